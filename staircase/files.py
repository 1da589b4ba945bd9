"""Atomic file writes: a reader never sees half a file, a kill never loses the old one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write`` on a temporary file in ``path``'s folder, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a written file gets the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON (trailing newline, stable key order as given)."""
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: str | os.PathLike, what: str, missing_hint: str = "", corrupt_hint: str = "") -> Any:
    """Parse a JSON file; a missing or unparsable one is one :class:`SpecError` naming ``what`` and the path."""
    from .errors import SpecError

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{what} {path} does not exist{missing_hint}") from None
    except OSError as exc:
        raise SpecError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{what} {path} is not valid JSON (line {exc.lineno}: {exc.msg}){corrupt_hint}") from None


def check_writable(path: str | os.PathLike, flag: str = "--out", folder: bool = False) -> Path:
    """Refuse, before any work, an output that cannot be written: a folder where a file is
    meant (or the other way round), a file in the way of a folder to create, or a folder
    this user may not write in. One :class:`SpecError` names the flag and the path."""
    from .errors import SpecError

    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        kind = "a folder" if path.is_dir() else "a file"
        raise SpecError(f"{flag} {path} is {kind}; give the {'folder' if folder else 'file'} to write")
    ancestor = path if folder and path.exists() else path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise SpecError(f"{flag} {path}: {ancestor} is a file, so no folder can be made there; choose another {flag}")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise SpecError(f"{flag} {path}: this user cannot write in {ancestor}; choose another {flag}")
    return path
