"""`edgebench farm submit`: a farm file -> one job per device x model on the broker, one farm run id.

The controller needs no device files: device credentials stay on the lab hosts. A device
is named in the farm file; a `tag:TAG` selector matches the devices lab workers have
announced. A name no worker has announced is still submitted (its job waits in its queue,
and `farm status` says nobody owns it). Model, data set and calibration files that are not
zoo names travel through the broker, addressed by sha256, so every lab measures the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import redis

from edgebench import __version__
from edgebench.core.fileio import sha256_file
from edgebench.farm.config import FarmFile, FarmFileError
from edgebench.farm.scheduler import FarmOptions, model_keys, run_request
from edgebench.labs.broker import Patience, dramatiq_broker, enqueue, key, now, redacted
from edgebench.labs.jobs import JOB_KIND, JOB_SCHEMA_VERSION, JobRecords, farm_settings, validate_job
from edgebench.labs.registry import announced_devices
from edgebench.results.layout import new_id
from edgebench.run.pipeline import prepare_work
from edgebench.zoo import zoo_names

BLOB_LIFETIME_S = 14 * 86400  # model files stay on the broker two weeks past their farm run's deadline


@dataclass(frozen=True)
class Submission:
    farm_run: str
    jobs: list[tuple[str, str]]  # (device, model key)
    unowned: list[str]  # devices no live worker owns right now: their jobs wait


def submit_farm(farm: FarmFile, client: redis.Redis, url: str, deadline_s: float, command: list[str],
                cache_dir: Path | None = None, on_prepare=lambda _: None) -> Submission:  # fmt: skip
    devices = choose_devices(farm, announced_devices(client))
    works = []
    for job in farm.models:
        on_prepare(f"preparing {job.model}")
        works.append(prepare_work(run_request(farm, job, "", FarmOptions(cache_dir=cache_dir))))
    keys = model_keys(works)
    models = []
    for model_key, job, work in zip(keys, farm.models, works, strict=True):
        zoo = zoo_spec(job.model)
        models.append({
            "key": model_key,
            "model": {"zoo": zoo} if zoo else {"file": _upload(client, Path(job.model), deadline_s)},
            "variants": job.variants,
            "dataset": _upload(client, job.dataset, deadline_s) if job.dataset else None,
            "calibration": _upload(client, job.calibration, deadline_s) if job.calibration else None,
            "planned": [v.name for v in work.variants],
            "planned_sha256": {v.name: v.sha256 for v in work.variants},
        })  # fmt: skip
    farm_run = new_id(farm.name)
    submitted = now()
    deadline = submitted + deadline_s
    header = {
        "farm": {"name": farm.name, "path": str(farm.path), "sha256": farm.sha256},
        "command": command,
        "baseline": {"policy": farm.baseline, "threshold": farm.threshold},
        "models": [
            {"key": m["key"], "model": str(j.model), "variants": m["planned"]}
            for m, j in zip(models, farm.models, strict=True)
        ],
        "planned_devices": devices,
        "rounds": farm.rounds,
        "labs": {"broker": redacted(url), "submitted_at": submitted, "deadline": deadline},
    }
    jobs = [(device, m["key"]) for device in devices for m in models]
    payloads = [
        validate_job(
            {
                "schema_version": JOB_SCHEMA_VERSION,
                "kind": JOB_KIND,
                "edgebench_version": __version__,
                "farm_run": farm_run,
                "device": device,
                "model": model_key,
                "deadline": deadline,
                "farm": farm_settings(farm),
                "models": models,
            }
        )
        for device, model_key in jobs
    ]
    records = JobRecords(client)
    # The records first, in one transaction: a job whose message is lost is still seen (queued) by status and
    # collect, never silently missing.
    with client.pipeline(transaction=True) as pipe:
        pipe.hset(key("farm", farm_run), mapping={"header": json.dumps(header), "jobs": json.dumps(jobs),
                                                  "deadline": deadline, "submitted_at": submitted})  # fmt: skip
        pipe.zadd(key("farms"), {farm_run: submitted})
        for payload in payloads:
            records.create(payload, submitted, pipe)
        pipe.execute()
    broker = dramatiq_broker(client, heartbeat_timeout_s=60)
    for payload in payloads:
        Patience(60).call(lambda p=payload: enqueue(broker, p), f"enqueueing the job for {payload['device']}")
    live = {name for name, entry in announced_devices(client).items() if entry.get("live")}
    return Submission(farm_run, jobs, [d for d in devices if d not in live])


def choose_devices(farm: FarmFile, announced: dict[str, dict]) -> list[str]:
    """The farm's device names in order, each once: names as written, tag:TAG from the announced devices."""
    chosen: list[str] = []

    def expand(spec: str) -> list[str]:
        if spec.startswith("tag:"):
            found = [name for name, entry in sorted(announced.items()) if spec[4:] in entry.get("tags", [])]
            if not found:
                raise FarmFileError(f"{farm.path}: key 'devices': no device a lab worker announced has tag "
                                    f"{spec[4:]!r} (start the lab's worker first, or name the device)")  # fmt: skip
            return found
        if spec.endswith(".toml") or "/" in spec:
            raise FarmFileError(f"{farm.path}: key 'devices': {spec!r} is a device file; across labs, device "
                                "files stay on the lab hosts: name the device instead")  # fmt: skip
        return [spec]

    for spec in farm.devices:
        chosen += [name for name in expand(spec) if name not in chosen]
    excluded = {name for spec in farm.exclude for name in (expand(spec) if not spec.startswith("tag:")
                or any(spec[4:] in e.get("tags", []) for e in announced.values()) else [])}  # fmt: skip
    selected = [name for name in chosen if name not in excluded]
    if not selected:
        raise FarmFileError(f"{farm.path}: every device is excluded; nothing to submit")
    return selected


def zoo_spec(model: str) -> str | None:
    """The zoo name a farm's model is, or None for a file (resolve_model's rule: an existing file wins)."""
    return model if model in zoo_names() and not Path(model).exists() else None


def _upload(client: redis.Redis, path: Path, deadline_s: float) -> dict:
    """A file onto the broker, once per content: {name, sha256, bytes}."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise FarmFileError(f"cannot read {path}: {error.strerror or error}") from None
    digest = sha256_file(path)
    client.set(key("blob", digest), data, ex=int(deadline_s + BLOB_LIFETIME_S), nx=True)
    client.expire(key("blob", digest), int(deadline_s + BLOB_LIFETIME_S))
    return {"name": path.name, "sha256": digest, "bytes": len(data)}
