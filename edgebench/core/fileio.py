"""Content hashes and atomic writes: a reader never sees a half-written file."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


# One run asks for the same hashes several times (zoo check, variant cache key,
# run summary, push): a file is read again only when its size or mtime moved.
_hashes: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike) -> str:
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _hashes:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        _hashes[key] = digest.hexdigest()
    return _hashes[key]


# errno values that mean "this place cannot be written", as opposed to a bug: said in one line, never a traceback.
UNWRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT}


def unwritable(error: OSError) -> bool:
    return error.errno in UNWRITABLE


def where_unwritable(error: OSError, what: str) -> str:
    """One line naming the folder that refused a write: "cannot write <what>: <folder> is read-only"."""
    target = Path(error.filename) if error.filename else None
    folder = target.parent if target is not None else None
    reasons = {errno.EROFS: "is on a read-only file system", errno.ENOSPC: "is on a full disk",
               errno.EDQUOT: "is over its disk quota"}  # fmt: skip
    reason = reasons.get(error.errno, f"is not writable ({error.strerror})")
    return f"cannot write {what}: {folder or 'its folder'} {reason}"


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (os.umask can only set it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write to a temp file in the same directory, fsync, then rename over `path`. The file gets the mode a plain
    open() would (0666 less the umask), not mkstemp's private 0600: results and reports are for sharing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Also on KeyboardInterrupt: never leave the temp file behind.
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, document: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(document, indent=2, sort_keys=False) + "\n").encode())


def atomic_copy(source: str | os.PathLike, destination: str | os.PathLike) -> Path:
    return atomic_write_bytes(destination, Path(source).read_bytes())


def read_toml(path: Path, error: type[Exception], kind: str) -> dict:
    """A TOML file as a dict; a missing, unreadable or malformed one raises `error` naming the file."""
    import tomllib

    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise error(f"{kind} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as problem:
        raise error(f"{path}: cannot read: {problem}") from None
    except tomllib.TOMLDecodeError as problem:
        raise error(f"{path}: invalid TOML: {problem}") from None
