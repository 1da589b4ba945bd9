import os
import stat

from staircase.files import atomic_write_json, read_json


def test_atomic_write_gives_the_usual_mode_and_replaces_whole(tmp_path):
    path = atomic_write_json(tmp_path / "a" / "x.json", {"k": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    atomic_write_json(path, {"k": 2})
    assert read_json(path, "test file") == {"k": 2}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # no temporary file left behind
