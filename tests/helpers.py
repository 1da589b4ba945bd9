"""Checks shared by the tests."""


def one_line_error(proc, *fragments):
    """A user's error: exit 1, one line on stderr that starts with ``staircase: error:`` and
    names each of ``fragments``."""
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("staircase: error: "), proc.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
