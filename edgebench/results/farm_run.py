"""One farm run on disk: results/_farms/<farm-run-id>/farm.json, written as the night goes.

It lists each device's state and the run folders it produced, so a controller that dies
or a farm stopped with Ctrl-C can be resumed (`farm run --resume ID`) and its summary
rebuilt from the run folders, which stay the source of truth. Worker threads update it
through one lock; every write is atomic.

farm.json history:
  1: first version
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.core.errors import EdgebenchError
from edgebench.core.fileio import atomic_write_json
from edgebench.results.documents import header, make_folder, read_document, utc_now
from edgebench.results.layout import farm_file, farm_folder, farm_folders, farms_dir

FARM_SCHEMA_VERSION = 1
FARM_KIND = "edgebench.farm-run"


@dataclass
class FarmRunStore:
    folder: Path
    document: dict
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, results_dir: Path, farm_run: str, fields: dict) -> FarmRunStore:
        folder = make_folder(farm_folder(results_dir, farm_run), "the farm run folder")
        first = header(FARM_KIND, FARM_SCHEMA_VERSION, farm_run=farm_run)
        document = {**first, **fields, "status": "running", "started_at": utc_now(), "devices": {}}
        store = cls(folder, document)
        store.write()
        return store

    @classmethod
    def open(cls, results_dir: Path, farm_run: str) -> FarmRunStore:
        folder = farm_folder(results_dir, farm_run)
        return cls(folder, load_farm_document(folder))

    def device(self, name: str) -> dict:
        return self.document["devices"].setdefault(name, {"state": "pending", "reason": None, "runs": []})

    def set_state(self, name: str, state: str, reason: str | None = None, **extra) -> None:
        with self.lock:
            self.device(name).update({"state": state, "reason": reason, **extra})
            self.write()

    def add_run(self, name: str, entry: dict) -> None:
        with self.lock:
            self.device(name)["runs"].append(entry)
            self.write()

    def update_run(self, name: str, run_id: str, status: str | None) -> None:
        """A listed run's final status; None: its folder was discarded (it never measured), so unlist it."""
        with self.lock:
            runs = self.device(name)["runs"]
            for entry in list(runs):
                if entry["run_id"] == run_id:
                    if status is None:
                        runs.remove(entry)
                    else:
                        entry["status"] = status
            self.write()

    def finish(self, status: str, extra: dict) -> None:
        with self.lock:
            self.document.update({"status": status, "finished_at": utc_now(), **extra})
            self.write()

    def write(self) -> None:
        atomic_write_json(farm_file(self.folder), self.document)


def load_farm_document(folder: Path) -> dict:
    path = farm_file(folder)
    document = read_document(path, FARM_KIND, (FARM_SCHEMA_VERSION,), missing=f"no farm run at {folder} (no "
                             f"{path.name})", damaged="its run folders are intact")  # fmt: skip
    if not isinstance(document.get("devices"), dict) or not isinstance(document.get("models"), list):
        raise EdgebenchError(f"{path} is damaged (no devices or models); its run folders are intact")
    return document


def resolve_farm_run(spec: str | None, results_dir: Path) -> Path:
    """A farm run folder, a farm run id, or (None) the newest farm run."""
    if spec and farm_file(Path(spec)).is_file():
        return Path(spec)
    root = farms_dir(results_dir)
    if spec:
        folder = farm_folder(results_dir, spec)
        if farm_file(folder).is_file():
            return folder
        raise EdgebenchError(f"no farm run {spec!r} under {root}")
    runs = farm_folders(results_dir)
    if not runs:
        raise EdgebenchError(f"no farm runs under {root}")
    return runs[-1]
