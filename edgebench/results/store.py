"""Where runs live on disk: results/<device>/<run-id>/.

A run folder holds one agent document per measurement (`<variant>.json`, or
`<variant>.r<round>.json` with several rounds) and `run.json`, the run summary,
rewritten atomically after every measurement so that an interrupted run keeps
everything measured so far.

run.json format history (schema_version):
  1 - first version.
"""

from __future__ import annotations

import contextlib
import errno
import json
import secrets
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgebench import __version__
from edgebench.core.errors import EdgebenchError
from edgebench.core.fileio import atomic_write_json
from edgebench.results import schemas

RUN_SCHEMA_VERSION = 1
RUN_KIND = "edgebench.run"
# 2 adds fidelity and robust dispersion; 3 is a benchmark_model document: timing.per_sample false, samples_us
# empty, stats.p90 null, p50 the binary's median or mean (timing.p50_is), accuracy computed on the host (sources).
AGENT_SCHEMA_VERSIONS = (1, 2, 3)


class ResultsError(EdgebenchError):
    """A results folder or document cannot be read."""


class ResultsWriteError(ResultsError):
    """The results folder refused a write (a full disk): the run stops, what was measured is still in memory."""

    exit_code = 1


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def new_run_id(model_name: str) -> str:
    # Sortable by time, unique across two runs started in the same second.
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{model_name}-{secrets.token_hex(2)}"


@dataclass
class Measurement:
    """One agent run of one variant in one round."""

    variant: str
    round: int
    status: str  # "ok" or "failed"
    document: dict | None = None
    error: str | None = None
    file: str | None = None
    context: dict | None = None  # what the runner did before it (a cool-down), kept beside it in run.json


@dataclass
class RunStore:
    """Writes a run as it happens."""

    folder: Path
    summary: dict
    measurements: list[Measurement] = field(default_factory=list)

    @classmethod
    def create(cls, results_dir: Path, device_name: str, run_id: str, summary: dict) -> RunStore:
        folder = Path(results_dir) / device_name / run_id
        try:
            folder.mkdir(parents=True, exist_ok=False)
        except OSError as error:
            raise ResultsError(f"cannot create results folder {folder}: {error.strerror or error}") from None
        header = {
            "schema_version": RUN_SCHEMA_VERSION,
            "kind": RUN_KIND,
            "run_id": run_id,
            "edgebench_version": __version__,
        }
        store = cls(folder, {**header, **summary, "status": "running", "started_at": utc_now(), "measurements": []})
        store._write_summary()
        return store

    def add(self, measurement: Measurement) -> None:
        """Keep a measurement: in memory first, so a write that fails (a full disk) loses nothing measured."""
        self.measurements.append(measurement)
        try:
            if measurement.document is not None:
                rounds = self.summary.get("rounds", 1)
                name = (
                    f"{measurement.variant}.json" if rounds == 1 else f"{measurement.variant}.r{measurement.round}.json"
                )
                atomic_write_json(self.folder / name, measurement.document)
                measurement.file = name
            self.summary["measurements"].append(
                {
                    "variant": measurement.variant,
                    "round": measurement.round,
                    "status": measurement.status,
                    "file": measurement.file,
                    "error": measurement.error,
                    **({"context": measurement.context} if measurement.context else {}),
                }
            )
            self._write_summary()
        except (OSError, ResultsError) as error:
            raise self._unsaved(error) from None

    def _unsaved(self, error: Exception) -> ResultsWriteError:
        """The results folder refused a write: mark the run failed where that still fits, and say what was kept."""
        reason = (
            "disk full" if getattr(error, "errno", None) == errno.ENOSPC or "No space" in str(error) else "write failed"
        )
        self.summary["status"] = "failed"
        self.summary["error"] = f"{reason}: {getattr(error, 'strerror', None) or error}"
        with contextlib.suppress(OSError, ResultsError):
            self._write_summary()  # small; it may still fit where a measurement did not
        return ResultsWriteError(
            f"results not saved: {reason} in {self.folder} ({getattr(error, 'strerror', None) or error}); "
            f"{len(self.measurements)} measurement(s) kept in memory and shown above"
        )

    def finish(self, status: str, extra: dict | None = None) -> None:
        self.summary["status"] = status
        self.summary["finished_at"] = utc_now()
        self.summary.update(extra or {})
        self._write_summary()

    def _write_summary(self) -> None:
        try:
            atomic_write_json(self.folder / "run.json", self.summary)
        except OSError as error:
            raise ResultsError(f"cannot write {self.folder / 'run.json'}: {error.strerror or error}") from None


@dataclass(frozen=True)
class Latency:
    """A variant's latency in one run: the one definition the table, history, baselines and compare share.

    With several rounds, each round's statistic is taken on its own samples and the median over
    rounds reported, so a round disturbed by the machine moves the figure only as much as one
    round of several should."""

    p50_us: float  # median over rounds of each round's median
    p90_us: float | None  # likewise of each round's 90th percentile; None when a backend gives none
    mean_us: float  # median over rounds of each round's mean
    rounds: int


def latency(documents: list[dict]) -> Latency | None:
    """The Latency of successful agent documents of one variant (one per round); None without any."""
    stats = [document["timing"]["stats"] for document in documents]
    if not stats:
        return None
    return Latency(
        statistics.median(s["p50"] for s in stats),
        statistics.median(s["p90"] for s in stats) if all(s.get("p90") is not None for s in stats) else None,
        statistics.median(s["mean"] for s in stats),
        len(stats),
    )


@dataclass(frozen=True)
class RunData:
    """A run read back and validated: its summary and its measurements with their agent documents."""

    summary: dict
    measurements: Sequence[Measurement]

    @property
    def run_id(self) -> str:
        return self.summary["run_id"]

    def ok(self, variant: str) -> list[dict]:
        return [m.document for m in self.measurements if m.variant == variant and m.status == "ok" and m.document]

    def variants(self) -> list[str]:
        return list(dict.fromkeys(m.variant for m in self.measurements))

    def latency(self, variant: str) -> Latency | None:
        return latency(self.ok(variant))

    def environment(self) -> dict:
        for m in self.measurements:
            if m.status == "ok" and m.document:
                return m.document.get("environment", {})
        return {}


def load(folder: str | Path) -> RunData:
    return RunData(*load_run(folder))


def load_run(folder: str | Path) -> tuple[dict, list[Measurement]]:
    """Read a run folder back: the summary and its measurements with their documents."""
    folder = Path(folder)
    path = folder / "run.json"
    summary = _read_json(path, f"no run.json in {folder}; is it a run folder?")
    if summary.get("kind") != RUN_KIND or summary.get("schema_version") != RUN_SCHEMA_VERSION:
        raise ResultsError(
            f"{path} is schema_version {summary.get('schema_version')!r} of {summary.get('kind')!r}; this edgebench "
            f"{__version__} reads {RUN_KIND} version {RUN_SCHEMA_VERSION}: upgrade edgebench to read it"
        )
    _require_valid(path, summary, schemas.RUN)
    measurements = []
    for entry in summary["measurements"]:
        document = _read_document(folder, entry["file"]) if entry["file"] else None
        fields = (entry["variant"], entry["round"], entry["status"], document, entry.get("error"), entry["file"])
        measurements.append(Measurement(*fields, entry.get("context")))
    return summary, measurements


def _read_document(folder: Path, name: str) -> dict:
    """One agent document of a run, validated: a missing or half-written file is named, never a traceback."""
    path = folder / name
    document = _read_json(path, f"{path} is missing; run.json lists it, so this run is damaged")
    _require_valid(path, document, schemas.AGENT_RESULT)
    return document


def _read_json(path: Path, missing: str):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(missing) from None
    except (OSError, ValueError) as error:
        raise ResultsError(f"{path} is damaged ({error}); this run cannot be read") from None


def _require_valid(path: Path, document, schema: dict) -> None:
    damage = schemas.problem(document, schema)
    if damage:
        raise ResultsError(f"{path} is damaged ({damage}); this run cannot be read")
