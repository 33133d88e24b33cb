"""The results folder's layout: the only code that knows where runs and farm runs lie and what their files are called.

results/
  <device>/<run-id>/run.json            one run: its record (results.store)
  <device>/<run-id>/<variant>[.rN].json the agent's document of each measurement
  _farms/<farm-run-id>/farm.json        one farm run (results.farm_run)
  _farms/devices.json                   quarantines and failure counts (farm.quarantine)
  history.sqlite                        the index over the run folders (history.index)
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from edgebench.core.fileio import atomic_write_bytes

RUN_FILE = "run.json"
FARM_FILE = "farm.json"
# Device names start with a letter or digit, so no device's results folder can be this one.
FARMS = "_farms"


def default_results_dir() -> Path:
    return Path(os.environ.get("EDGEBENCH_RESULTS", "results"))


def new_id(name: str) -> str:
    """A run or farm run id: sortable by time, unique across two started in the same second."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{name}-{secrets.token_hex(2)}"


def run_folder(results_dir: Path, device: str, run_id: str) -> Path:
    return Path(results_dir) / device / run_id


def run_file(folder: Path) -> Path:
    return Path(folder) / RUN_FILE


def is_run_folder(path: Path) -> bool:
    return run_file(path).is_file()


def run_folders(results_dir: Path, device: str = "*", run_id: str = "*") -> list[Path]:
    """Run folders under results_dir (glob patterns for device and run id), oldest run id first."""
    found = Path(results_dir).glob(f"{device}/{run_id}/{RUN_FILE}")
    return sorted((path.parent for path in found), key=lambda folder: folder.name)


def farms_dir(results_dir: Path) -> Path:
    return Path(results_dir) / FARMS


def farm_folder(results_dir: Path, farm_run: str) -> Path:
    return farms_dir(results_dir) / farm_run


def farm_file(folder: Path) -> Path:
    return Path(folder) / FARM_FILE


def farm_folders(results_dir: Path) -> list[Path]:
    return sorted(path.parent for path in farms_dir(results_dir).glob(f"*/{FARM_FILE}"))


def run_folder_files(folder: Path) -> list[Path]:
    """The files of a run folder, to ship it whole (to another lab host)."""
    # Leaves out what an atomic write has not finished (.<name>.<random>.tmp).
    return sorted(
        p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix != ".tmp"
    )


def write_run_folder(folder: Path, files: dict[str, bytes]) -> bool:
    """A run folder's files, written where they differ; run.json last, so a reader never sees a run.json naming
    measurement files not yet written. True when anything changed. The caller checked names and hashes."""
    if RUN_FILE not in files:
        raise ValueError(f"no {RUN_FILE}")
    changed = False
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(files, key=lambda n: n == RUN_FILE):
        path = folder / name
        if path.is_file() and path.read_bytes() == files[name]:
            continue
        atomic_write_bytes(path, files[name])
        changed = True
    return changed
