"""Where runs live on disk: results/<device>/<run-id>/.

A run folder holds one agent document per measurement (`<variant>.json` for
the first round, `<variant>.r<round>.json` for later ones) and `run.json`, the run summary,
rewritten atomically after every measurement so that an interrupted run keeps
everything measured so far.

run.json format history (schema_version):
  1 - first version.
  2 - each measurement entry has "kind": why it failed, as a value (FailureKind), beside the message for
      people; null when it is ok. A version 1 file is migrated on read (the kind derived from its message).
      Added within version 2: "matrix" (id, setting, values, index) on a run of `--accelerator gpu,cpu`, which
      older readers ignore, and the kind "refused-by-accelerator", which an older edgebench refuses in one line
      ("damaged (unknown failure kind ...)"): only runs where an accelerator refused a variant carry it.
"""

from __future__ import annotations

import contextlib
import errno
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from edgebench.agent.agent import RESULT_KIND
from edgebench.core.controller import Controller
from edgebench.core.fileio import atomic_write_json
from edgebench.results import layout, schemas
from edgebench.results.documents import ResultsError, header, make_folder, read_document, utc_now
from edgebench.results.latency import Latency, latency
from edgebench.results.record import RunRecord

RUN_SCHEMA_VERSION = 2
READS_RUN_VERSIONS = (1, 2)  # older versions are migrated on read (migrate_run)
RUN_KIND = "edgebench.run"
# 2 adds fidelity and robust dispersion; 3 is a benchmark_model document: timing.per_sample false, samples_us
# empty, stats.p90 null, p50 the binary's median or mean (timing.p50_is), accuracy computed on the host (sources).
AGENT_SCHEMA_VERSIONS = (1, 2, 3)


class ResultsWriteError(ResultsError):
    """The results folder refused a write (a full disk): the run stops, what was measured is still in memory."""

    exit_code = 1


# A measurement document's warning kind: its latencies time queued accelerator work, not inferences (a LiteRT
# benchmark tool on a GPU); the run's view makes no speed claim from it.
ASYNCHRONOUS_TIMING = "asynchronous-timing"


class FailureKind(StrEnum):
    """Why a measurement failed, as a value: retries, quarantine and farm verdicts decide on it, never on a
    message's wording. The message beside it is for people."""

    STALLED = "stalled"  # the agent went silent for the stall timeout (a frozen board); the device may come back
    LOST_CONNECTION = "lost-connection"  # the device went away mid-command or stopped answering a reconnect
    NOT_MEASURED = "not-measured"  # never started: the device was lost before this measurement's turn
    UNSUPPORTED = "unsupported-on-device"  # the device's runtime refuses the model: another attempt changes nothing
    # The accelerator asked for (a GPU, an NPU) cannot take the model at all: what the user came to learn about
    # that accelerator, so it is a finding of the run (its variant is "refused"), not a failure that makes the
    # run partial; another attempt changes nothing.
    REFUSED = "refused-by-accelerator"
    DISK_FULL = "disk-full"  # the device had no room for the file
    TIMED_OUT = "timed-out"  # the agent ran past the run's timeout and was killed
    CRASHED = "crashed"  # the agent ended without a result document
    AGENT_ERROR = "agent-error"  # the agent (or benchmark_model) reported an error of its own; the message says which
    DEVICE_ERROR = "device-error"  # a command could not run on the device for another reason


@dataclass
class Measurement:
    """One agent run of one variant in one round: the variant record of run.json, with its document."""

    variant: str
    round: int
    status: str  # "ok" or "failed"
    document: dict | None = None
    error: str | None = None  # for people
    file: str | None = None
    context: dict | None = None  # what the runner did before it (a cool-down), kept beside it in run.json
    kind: FailureKind | None = None  # why it failed, for code; None when it is ok

    @classmethod
    def failed(cls, variant: str, round_number: int, kind: FailureKind, error: str,
               document: dict | None = None) -> Measurement:  # fmt: skip
        return cls(variant, round_number, "failed", document, error, kind=kind)

    def entry(self) -> dict:
        """Its entry in run.json's "measurements"."""
        return {
            "variant": self.variant,
            "round": self.round,
            "status": self.status,
            "kind": self.kind.value if self.kind else None,
            "file": self.file,
            "error": self.error,
            **({"context": self.context} if self.context else {}),
        }


@dataclass
class RunStore:
    """Writes a run as it happens."""

    folder: Path
    record: RunRecord
    measurements: list[Measurement] = field(default_factory=list)

    @classmethod
    def create(cls, results_dir: Path, device_name: str, run_id: str, fields: dict) -> RunStore:
        folder = make_folder(layout.run_folder(results_dir, device_name, run_id), "results folder")
        first = header(RUN_KIND, RUN_SCHEMA_VERSION, run_id=run_id)
        # Who measures: a run left "running" by a controller that is gone can then be closed as interrupted.
        record = RunRecord({**first, **fields, "status": "running", "started_at": utc_now(),
                            "controller": Controller.current().as_dict(), "measurements": []})  # fmt: skip
        store = cls(folder, record)
        store._write_record()
        return store

    def add(self, measurement: Measurement) -> None:
        """Keep a measurement: in memory first, so a write that fails (a full disk) loses nothing measured."""
        self.measurements.append(measurement)
        try:
            if measurement.document is not None:
                # The first round keeps the plain name: how many rounds follow may be decided after it.
                name = (
                    f"{measurement.variant}.json" if measurement.round == 1
                    else f"{measurement.variant}.r{measurement.round}.json"
                )  # fmt: skip
                atomic_write_json(self.folder / name, measurement.document)
                measurement.file = name
            self.record["measurements"].append(measurement.entry())
            self._write_record()
        except (OSError, ResultsError) as error:
            raise self._unsaved(error) from None

    def _unsaved(self, error: Exception) -> ResultsWriteError:
        """The results folder refused a write: mark the run failed where that still fits, and say what was kept."""
        reason = (
            "disk full" if getattr(error, "errno", None) == errno.ENOSPC or "No space" in str(error) else "write failed"
        )
        self.record["status"] = "failed"
        self.record["error"] = f"{reason}: {getattr(error, 'strerror', None) or error}"
        with contextlib.suppress(OSError, ResultsError):
            self._write_record()  # small; it may still fit where a measurement did not
        return ResultsWriteError(
            f"results not saved: {reason} in {self.folder} ({getattr(error, 'strerror', None) or error}); "
            f"{len(self.measurements)} measurement(s) kept in memory and shown above"
        )

    def note(self, **fields) -> None:
        """Facts about the run beside its measurements (the device's probe, its health, why it was lost), kept
        in memory and written with the next measurement or the finish."""
        self.record.update(fields)

    def finish(self, status: str, extra: dict | None = None) -> None:
        self.record["status"] = status
        self.record["finished_at"] = utc_now()
        self.record.update(extra or {})
        self._write_record()

    def _write_record(self) -> None:
        try:
            atomic_write_json(layout.run_file(self.folder), self.record)
        except OSError as error:
            raise ResultsError(f"cannot write {layout.run_file(self.folder)}: {error.strerror or error}") from None


@dataclass(frozen=True)
class RunData:
    """A run read back and validated: its record and its measurements with their agent documents."""

    record: RunRecord
    measurements: Sequence[Measurement]

    @property
    def run_id(self) -> str:
        return self.record.run_id

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


def load_run(folder: str | Path) -> tuple[RunRecord, list[Measurement]]:
    """Read a run folder back: its record (migrated to the current version) and its measurements."""
    folder = Path(folder)
    path = layout.run_file(folder)
    summary = read_document(path, RUN_KIND, READS_RUN_VERSIONS, missing=f"no {path.name} in {folder}; is it a run "
                            "folder?", damaged="this run cannot be read")  # fmt: skip
    _require_valid(path, summary, schemas.RUN)
    summary = RunRecord(migrate_run(summary))
    measurements = []
    for entry in summary["measurements"]:
        document = _read_document(folder, entry["file"]) if entry["file"] else None
        fields = (entry["variant"], entry["round"], entry["status"], document, entry.get("error"), entry["file"])
        try:
            kind = FailureKind(entry["kind"]) if entry.get("kind") else None
        except ValueError:
            raise ResultsError(f"{path} is damaged (unknown failure kind {entry['kind']!r})") from None
        measurements.append(Measurement(*fields, entry.get("context"), kind))
    return summary, measurements


def migrate_run(summary: dict) -> dict:
    """A run.json of any version this edgebench reads -> the current version, in memory (the file is not
    rewritten: a folder on a read-only share, or read by an older edgebench too, stays as it is)."""
    if summary["schema_version"] == 1:
        entries = [{**e, "kind": _kind_of_v1(e)} for e in summary["measurements"]]
        summary = {**summary, "schema_version": 2, "measurements": entries}
    return summary


# Version 1 said why a measurement failed only in its message; these are the prefixes its writers used.
_V1_PREFIXES = (
    ("stalled: ", FailureKind.STALLED),
    ("not measured: ", FailureKind.NOT_MEASURED),
    ("unsupported on this device", FailureKind.UNSUPPORTED),
    ("agent timed out", FailureKind.TIMED_OUT),
    ("benchmark_model timed out", FailureKind.TIMED_OUT),
    ("agent crashed", FailureKind.CRASHED),
)


def _kind_of_v1(entry: dict) -> str | None:
    if entry["status"] == "ok":
        return None
    error = entry.get("error") or ""
    for prefix, kind in _V1_PREFIXES:
        if error.startswith(prefix):
            return kind.value
    if "out of disk space" in error:
        return FailureKind.DISK_FULL.value
    return FailureKind.AGENT_ERROR.value if entry.get("file") else FailureKind.DEVICE_ERROR.value


def _read_document(folder: Path, name: str) -> dict:
    """One agent document of a run, validated: a missing or half-written file is named, never a traceback."""
    path = folder / name
    document = read_document(
        path,
        RESULT_KIND,
        AGENT_SCHEMA_VERSIONS,
        damaged="this run cannot be read",
        missing=f"{path} is missing; {layout.RUN_FILE} lists it, so this run is damaged",
    )
    _require_valid(path, document, schemas.AGENT_RESULT)
    return document


def close_if_abandoned(folder: Path) -> bool:
    """A run still "running" whose controller is certainly dead (core/controller.py) is closed as interrupted:
    its measurements stay; it is no longer shown, resumed or waited on as if someone were measuring."""
    try:
        summary = json.loads(layout.run_file(folder).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(summary, dict) or summary.get("status") != "running":
        return False
    controller = Controller.of(summary.get("controller"))
    if controller is None or not controller.certainly_dead():
        return False
    mark_interrupted(folder, f"its controller ({controller.describe()}) died mid-run")
    return True


ABANDONED_LOOKBACK = 50  # runs of one device looked at: a dead controller's run is among the latest


def close_abandoned(device_folder: Path, keep: Path | None = None) -> list[Path]:
    """Close the runs of one device that a dead controller of this host left "running"; returns them."""
    folders = [f for f in layout.run_folders(device_folder.parent, device_folder.name) if f != keep]
    return [folder for folder in folders[-ABANDONED_LOOKBACK:] if close_if_abandoned(folder)]


def mark_interrupted(folder: Path, reason: str) -> None:
    """A run whose controller or worker died mid-run: its record says so (best effort: it may be unreadable)."""
    path = layout.run_file(folder)
    with contextlib.suppress(OSError, ValueError):
        summary = json.loads(path.read_text())
        summary.update({"status": "interrupted", "error": reason, "finished_at": utc_now()})
        atomic_write_json(path, summary)


def _require_valid(path: Path, document, schema: dict) -> None:
    damage = schemas.problem(document, schema)
    if damage:
        raise ResultsError(f"{path} is damaged ({damage}); this run cannot be read")
