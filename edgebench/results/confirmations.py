"""confirmation.json in a run folder: what an A/B confirmation re-measured for its slower variants.

Kept beside the run it judged, so `check`, `farm check` and the report show the confirmed verdict
later without measuring again. Plain data here (compare/confirmation.py gives it meaning); one
entry per variant, the newest confirmation of it winning. A damaged file reads as none.
"""

from __future__ import annotations

from pathlib import Path

from edgebench.core.fileio import atomic_write_json
from edgebench.results.documents import ResultsError, header, read_document

CONFIRMATION_FILE = "confirmation.json"
CONFIRMATION_KIND = "edgebench.confirmation"
CONFIRMATION_VERSION = 1


def read_confirmations(run_folder: Path) -> dict[str, dict]:
    """Variant name -> its confirmation as stored (empty when the run has none, or the file is damaged)."""
    path = Path(run_folder) / CONFIRMATION_FILE
    if not path.is_file():
        return {}
    try:
        document = read_document(path, CONFIRMATION_KIND, (CONFIRMATION_VERSION,), missing="", damaged="")
    except ResultsError:
        return {}  # only a cache of a re-measurement: the run's own verdict still stands
    variants = document.get("variants")
    return variants if isinstance(variants, dict) else {}


def write_confirmations(run_folder: Path, confirmations: dict[str, dict]) -> Path:
    """Add these variants' confirmations to the run folder's file, replacing older ones of the same variants."""
    variants = {**read_confirmations(run_folder), **confirmations}
    document = {**header(CONFIRMATION_KIND, CONFIRMATION_VERSION), "variants": variants}
    return atomic_write_json(Path(run_folder) / CONFIRMATION_FILE, document)
