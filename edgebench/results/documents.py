"""What every results document shares: a new folder of its own, a versioned header, and reading one back.

A run (run.json) and a farm run (farm.json) are both a JSON document in a folder of their own, with
schema_version, kind and the edgebench version that wrote it; each reader names a damaged or foreign file
in one line instead of a traceback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from pathlib import Path

from edgebench import __version__
from edgebench.core.errors import EdgebenchError


class ResultsError(EdgebenchError):
    """A results folder or document cannot be read or written."""


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def make_folder(folder: Path, what: str) -> Path:
    """A new folder for one document; a second writer with the same id fails instead of mixing in."""
    try:
        folder.mkdir(parents=True, exist_ok=False)
    except OSError as error:
        raise ResultsError(f"cannot create {what} {folder}: {error.strerror or error}") from None
    return folder


def header(kind: str, version: int, **ids: str) -> dict:
    return {"schema_version": version, "kind": kind, **ids, "edgebench_version": __version__}


def read_document(path: Path, kind: str, versions: Collection[int], *, missing: str, damaged: str) -> dict:
    """A document of this kind and one of these versions; ResultsError in one line otherwise. `damaged` says
    what still holds when it is damaged ("this run cannot be read", "its run folders are intact")."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(missing) from None
    except (OSError, ValueError) as error:
        raise ResultsError(f"{path} is damaged ({error}); {damaged}") from None
    if not isinstance(document, dict) or document.get("kind") != kind or document.get("schema_version") not in versions:
        found = document.get("schema_version") if isinstance(document, dict) else None
        what = document.get("kind") if isinstance(document, dict) else type(document).__name__
        raise ResultsError(
            f"{path} is schema_version {found!r} of {what!r}; this edgebench {__version__} reads {kind} versions "
            f"{', '.join(map(str, versions))}: upgrade edgebench to read it"
        )
    return document
