"""`edgebench farm collect ID` and `farm status ID`: the broker's view of a submitted farm run.

collect writes the results folder exactly as a local `farm run` leaves it: every shipped run
folder (each file checked against its sha256; a damaged one is named and skipped), the
history index, and `_farms/<ID>/farm.json` with each device's state and runs, so `farm check`,
`compare` and `report` work unchanged. It only reads the broker, and writes each file
atomically, so it can run any number of times: a collector that was down catches up by
running again. The farm run is final when every job has ended, or at its deadline: jobs
still queued then expire (a worker that comes later drops them) and their devices are
"pending" with the reason, so `farm check` exits 2.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import redis

from edgebench import __version__
from edgebench.core.errors import EdgebenchError
from edgebench.core.fileio import atomic_write_json
from edgebench.farm.summary import FarmSummary, summarize_farm
from edgebench.history.index import default_history_path, index_run
from edgebench.labs.broker import iso, key, now
from edgebench.labs.jobs import JobRecords
from edgebench.labs.registry import announced_devices
from edgebench.results.farm_run import FARM_KIND, FARM_SCHEMA_VERSION
from edgebench.results.layout import farm_file, farm_folder, write_run_folder

ENDED = ("done", "failed", "expired")
# A device's state from its jobs' states: the most telling wins (a quarantine says more than a failure).
_DEVICE_STATE_ORDER = ("quarantined", "failed", "interrupted", "pending", "done", "absent")


@dataclass(frozen=True)
class JobView:
    device: str
    model: str
    state: str  # queued, running, done, failed, expired
    lab: str | None
    attempt: int
    detail: str
    record: dict


@dataclass(frozen=True)
class FarmView:
    farm_run: str
    header: dict
    deadline: float
    jobs: list[JobView]

    @property
    def ended(self) -> bool:
        return all(j.state in ENDED for j in self.jobs)

    @property
    def past_deadline(self) -> bool:
        return now() > self.deadline


def farm_view(client: redis.Redis, farm_run: str) -> FarmView:
    raw = client.hgetall(key("farm", farm_run))
    if not raw:
        known = [m.decode() for m in client.zrange(key("farms"), -5, -1)]
        raise EdgebenchError(f"the broker has no farm run {farm_run!r}"
                             + (f" (newest: {', '.join(known)})" if known else " (none submitted)"))  # fmt: skip
    record = {k.decode(): v.decode() for k, v in raw.items()}
    records = JobRecords(client)
    devices = announced_devices(client)
    views = []
    for device, model in json.loads(record["jobs"]):
        job = records.read(farm_run, device, model)
        views.append(_job_view(device, model, job, devices.get(device), client))
    return FarmView(farm_run, json.loads(record["header"]), float(record["deadline"]), views)


def newest_farm_run(client: redis.Redis) -> str:
    newest = client.zrange(key("farms"), -1, -1)
    if not newest:
        raise EdgebenchError("the broker has no submitted farm runs")
    return newest[0].decode()


def _job_view(device: str, model: str, job: dict, owner: dict | None, client: redis.Redis) -> JobView:
    state = job.get("state", "queued")
    lab = job.get("lab") or (owner or {}).get("lab")
    attempt = int(job.get("deliveries", 0))
    if state == "queued":
        if owner is None:
            detail = f"queued: no worker has announced device {device}; it waits until one owns it"
        elif not owner.get("live"):
            detail = f"queued: {device} belongs to lab {owner['lab']}, whose worker is not running"
        else:
            detail = f"queued for lab {owner['lab']}" + (" (put back: its worker stopped)" if attempt else "")
    elif state == "running":
        alive = client.get(key("lease", device)) == (job.get("worker") or "").encode()
        since = iso(float(job["started_at"])) if job.get("started_at") else "?"
        detail = (f"running on lab {lab} since {since} (attempt {attempt})" if alive else
                  f"its worker (lab {lab}) stopped answering: the job is retried when that worker is back")  # fmt: skip
    else:
        detail = job.get("reason") or state
    return JobView(device, model, state, lab, attempt, detail, job)


def status_rows(view: FarmView) -> list[dict]:
    return [{"lab": j.lab or "?", "device": j.device, "model": j.model, "state": j.state, "detail": j.detail}
            for j in view.jobs]  # fmt: skip


@dataclass(frozen=True)
class Collected:
    folder: Path
    final: bool
    summary: FarmSummary
    written: int  # run folders written (or rewritten) this time
    problems: list[str]


def collect(client: redis.Redis, farm_run: str, results_dir: Path) -> Collected:
    view = farm_view(client, farm_run)
    final = view.ended or view.past_deadline
    if final and not view.ended:
        records = JobRecords(client)
        for job in view.jobs:
            if job.state == "queued":
                records.expire(farm_run, job.device, job.model, now(), "not started by its deadline: " + job.detail)
        view = farm_view(client, farm_run)
    shipped = {k.decode(): json.loads(v) for k, v in client.hgetall(key("farm", farm_run, "runs")).items()}
    written, problems = 0, []
    good_runs: dict[str, dict] = {}
    history = default_history_path(results_dir)
    for run_id, run in sorted(shipped.items(), key=lambda item: item[1]["attempt"]):
        try:
            changed = _write_run(results_dir, run)
        except EdgebenchError as error:
            problems.append(str(error))
            continue
        good_runs[run_id] = run
        if changed:
            written += 1
            try:
                index_run(history, results_dir / run["folder"])
            except (EdgebenchError, OSError) as error:
                problems.append(f"history index not updated for {run_id} ({error}); 'edgebench history rebuild'")
    document = _farm_document(view, good_runs, final, client)
    folder = farm_folder(results_dir, farm_run)
    folder.mkdir(parents=True, exist_ok=True)
    summary = summarize_farm(document, results_dir)
    if final:
        summary = dataclasses.replace(summary, status="done")
        document["summary"] = summary.document()
    atomic_write_json(farm_file(folder), document)
    return Collected(folder, final, summary, written, problems)


def _write_run(results_dir: Path, run: dict) -> bool:
    """A shipped run folder onto disk; True when anything changed. Damaged files refuse the whole run."""
    folder = (results_dir / run["folder"]).resolve()
    if results_dir.resolve() not in folder.parents or Path(run["folder"]).is_absolute():
        raise EdgebenchError(f"run {run['run_id']} names a folder outside the results: {run['folder']!r}; skipped")
    decoded = {}
    for name, entry in run["files"].items():
        data = base64.b64decode(entry["base64"])
        if "/" in name or name.startswith(".") or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise EdgebenchError(f"run {run['run_id']} from lab {run.get('lab')} arrived damaged ({name}: sha256 "
                                 "mismatch or bad name); skipped, its lab host still has it")  # fmt: skip
        decoded[name] = data
    try:
        return write_run_folder(folder, decoded)
    except ValueError as error:
        raise EdgebenchError(f"run {run['run_id']} arrived without its record ({error}); skipped") from None


def _farm_document(view: FarmView, runs: dict[str, dict], final: bool, client: redis.Redis) -> dict:
    devices: dict[str, dict] = {}
    announced = announced_devices(client)
    for job in view.jobs:
        entry = devices.setdefault(job.device, {"state": "done", "reason": None, "runs": [],
                                                "emulated": bool((announced.get(job.device) or {}).get("emulated")),
                                                "address": None, "lab": job.lab})  # fmt: skip
        result = job.record.get("result") or {}
        entry["emulated"] = result.get("emulated", entry["emulated"])
        entry["address"] = result.get("address", entry["address"])
        entry["runs"] += [r for r in result.get("runs", []) if r["run_id"] in runs]
        state, reason = _device_state(job, result)
        if _DEVICE_STATE_ORDER.index(state) < _DEVICE_STATE_ORDER.index(entry["state"]):
            entry["state"], entry["reason"] = state, reason
    header = view.header
    return {
        "schema_version": FARM_SCHEMA_VERSION,
        "kind": FARM_KIND,
        "farm_run": view.farm_run,
        "edgebench_version": __version__,
        **header,
        "status": "done" if final else "running",
        "started_at": iso(header["labs"]["submitted_at"]),
        **({"finished_at": iso(now())} if final else {}),
        "devices": devices,
    }


def _device_state(job: JobView, result: dict) -> tuple[str, str | None]:
    if job.state == "done":
        return result.get("device_state", "done"), job.record.get("reason") or None
    if job.state == "failed":
        state = result.get("device_state")
        return ("quarantined" if state == "quarantined" else "failed"), job.record.get("reason") or "failed"
    if job.state == "expired":
        return "pending", f"{job.model}: {job.record.get('reason') or 'expired'}"
    return "pending", f"{job.model}: {job.detail}"
