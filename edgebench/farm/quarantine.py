"""Which devices are out of service, and why: results/_farms/devices.json.

LAVA-style: a device that fails its health check, or fails `quarantine_after` farm runs
in a row, is quarantined. Later farm runs skip it:
- quarantined by a failed health check: each farm run checks its health again (nothing is
  measured if it fails); once it passes, the device is released and measured;
- quarantined for failing runs: it stays out until `edgebench devices release NAME`, since
  a board that probes fine and then hangs would otherwise fail every night.
Several farm runs may update the file at once: every change is read-modify-write under a lock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from edgebench.core.errors import EdgebenchError
from edgebench.core.fileio import atomic_write_json
from edgebench.results.layout import farms_dir

STATE_SCHEMA_VERSION = 1
STATE_KIND = "edgebench.device-states"
HEALTH, FAILURES = "health-check", "failed-runs"


def state_path(results_dir: Path) -> Path:
    return farms_dir(results_dir) / "devices.json"


def load_states(results_dir: Path) -> dict[str, dict]:
    """Every device's record; a missing file is no record, a damaged one is named."""
    path = state_path(results_dir)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise EdgebenchError(f"{path} is damaged ({error}); delete it to forget every quarantine") from None
    if document.get("kind") != STATE_KIND or document.get("schema_version") != STATE_SCHEMA_VERSION:
        raise EdgebenchError(
            f"{path} is schema_version {document.get('schema_version')!r}; this edgebench reads {STATE_SCHEMA_VERSION}"
        )
    return document.get("devices", {})


@contextmanager
def _editing(results_dir: Path) -> Iterator[dict[str, dict]]:
    path = state_path(results_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=60, thread_local=False):
        states = load_states(results_dir)
        yield states
        atomic_write_json(path, {"schema_version": STATE_SCHEMA_VERSION, "kind": STATE_KIND, "devices": states})


def quarantine_of(results_dir: Path, device: str) -> dict | None:
    return load_states(results_dir).get(device, {}).get("quarantine")


def record_health_failure(results_dir: Path, device: str, reason: str, farm_run: str) -> dict:
    with _editing(results_dir) as states:
        state = states.setdefault(device, {"consecutive_failures": 0})
        state["quarantine"] = state.get("quarantine") or _quarantine(HEALTH, reason, farm_run)
        state["quarantine"]["last_check"] = {"at": _now(), "reason": reason, "farm_run": farm_run}
        return dict(state)


def record_outcome(results_dir: Path, device: str, failed: bool, reason: str | None, farm_run: str,
                   quarantine_after: int) -> dict:  # fmt: skip
    """A farm run's result for the device: a failure counts towards quarantine, a success resets the count and
    lifts a health-check quarantine (its health check just passed)."""
    with _editing(results_dir) as states:
        state = states.setdefault(device, {"consecutive_failures": 0})
        if failed:
            state["consecutive_failures"] = state.get("consecutive_failures", 0) + 1
            state["last_failure"] = {"at": _now(), "reason": reason, "farm_run": farm_run}
            if state["consecutive_failures"] >= quarantine_after and not state.get("quarantine"):
                why = f"failed {state['consecutive_failures']} farm runs in a row; last: {reason}"
                state["quarantine"] = _quarantine(FAILURES, why, farm_run)
        else:
            state["consecutive_failures"] = 0
            if (state.get("quarantine") or {}).get("kind") == HEALTH:
                state["quarantine"] = None
                state["released"] = {"at": _now(), "by": f"a passed health check in {farm_run}"}
        return dict(state)


def release(results_dir: Path, device: str) -> dict | None:
    """`edgebench devices release NAME`: back in service, its failure count reset. Returns the lifted quarantine."""
    with _editing(results_dir) as states:
        state = states.get(device)
        lifted = state.get("quarantine") if state else None
        if state:
            state["quarantine"] = None
            state["consecutive_failures"] = 0
            state["released"] = {"at": _now(), "by": "edgebench devices release"}
        return lifted


def _quarantine(kind: str, reason: str, farm_run: str) -> dict:
    return {"kind": kind, "since": _now(), "reason": reason, "farm_run": farm_run}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
