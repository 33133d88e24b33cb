"""A lab job: one device x one model of a farm run, as plain JSON, and its record in the broker.

The payload is data, never code: a worker validates it against JOB_SCHEMA before anything
else and runs only its one actor. It carries the farm file's settings (already validated
by the submitter, checked again here by type), every model of the farm (the lab's copy of
farm.json lists them all) and which one this job measures.

A job's record (a Redis hash, key `edgebench:job:<farm run>:<device>:<model>`) is the one
place its state changes, always in one Lua script, so a duplicate delivery, a worker that
died and the worker that inherits its job cannot both measure:
  queued -> running (attempt N, worker W, device lease held by W)
         -> done | failed | queued again (the worker was stopped; it resumes) | expired (past the deadline)
A running job whose device lease expired lost its worker: the next delivery inherits it
(measuring only what the lost attempt had not); a second loss marks it failed with the reason.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import redis
from jsonschema import Draft202012Validator

from edgebench import __version__
from edgebench.core.settings import from_plain, plain_settings
from edgebench.core.settings import json_schema as settings_schema
from edgebench.farm.config import FarmFile, ModelJob
from edgebench.labs.broker import BrokerError, key

JOB_KIND = "edgebench.lab-job"
JOB_SCHEMA_VERSION = 2  # 2: the farm's settings by name, from the settings table
MAX_LOST = 1  # a job whose worker died is retried once; a second loss fails it

_STRING = {"type": "string"}
_NUMBER = {"type": "number"}
_FILE = {
    "type": "object",
    "required": ["name", "sha256", "bytes"],
    "properties": {"name": _STRING, "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "bytes": _NUMBER},
    "additionalProperties": False,
}
_MODEL = {
    "type": "object",
    "required": ["key", "model", "variants", "planned", "planned_sha256"],
    "properties": {
        "key": _STRING,
        "model": {
            "oneOf": [
                {"type": "object", "required": ["zoo"], "properties": {"zoo": _STRING}, "additionalProperties": False},
                {"type": "object", "required": ["file"], "properties": {"file": _FILE}, "additionalProperties": False},
            ]
        },
        "variants": {"type": ["string", "null"]},
        "dataset": {"oneOf": [{"type": "null"}, _FILE]},
        "calibration": {"oneOf": [{"type": "null"}, _FILE]},
        "planned": {"type": "array", "items": _STRING},
        # Each planned variant's sha256 on the controller: a lab whose quantizer makes other bytes refuses the job.
        "planned_sha256": {"type": "object", "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
    },
    "additionalProperties": False,
}
# The farm file's fields but its devices and models (the job's own), as farm_settings() writes them.
_FARM = {
    "type": "object",
    "required": ["name", "path", "sha256", "settings", "baseline", "threshold", "quarantine_after",
                 "connect_attempts", "rerun_failed"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9._-]+$"},
        "path": _STRING,
        "sha256": _STRING,
        "settings": settings_schema(),  # generated from the settings table
        "baseline": _STRING,
        "threshold": _STRING,
        "quarantine_after": {"type": "integer", "minimum": 1},
        "connect_attempts": {"type": "integer", "minimum": 1},
        "rerun_failed": {"type": "integer", "minimum": 0},
        # Optional: jobs of controllers from before A/B confirmation leave them out, and the defaults hold.
        "confirm": {"type": "boolean"},
        "confirm_pairs": {"type": "integer", "minimum": 3},
        # Optional too: devices that may be absent (farm.config.FarmFile.optional), names or tag:TAG.
        "optional": {"type": "array", "items": _STRING},
    },
    "additionalProperties": False,
}  # fmt: skip
JOB_SCHEMA = {
    "type": "object",
    "required": [
        "schema_version",
        "kind",
        "edgebench_version",
        "farm_run",
        "device",
        "model",
        "deadline",
        "farm",
        "models",
    ],
    "properties": {
        "schema_version": {"const": JOB_SCHEMA_VERSION},
        "kind": {"const": JOB_KIND},
        "edgebench_version": _STRING,
        "farm_run": {"type": "string", "pattern": r"^[A-Za-z0-9._-]+$"},
        "device": {"type": "string", "pattern": r"^[A-Za-z0-9._-]+$"},
        "model": _STRING,
        "deadline": _NUMBER,
        "farm": _FARM,
        "models": {"type": "array", "items": _MODEL, "minItems": 1},
    },
    "additionalProperties": False,
}
_VALIDATOR = Draft202012Validator(JOB_SCHEMA)


class BadJob(BrokerError):
    """A message that is not an edgebench job this worker can run; it is refused, never executed."""


def validate_job(payload) -> dict:
    errors = sorted(_VALIDATOR.iter_errors(payload), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "the payload"
        raise BadJob(f"not an edgebench lab job ({where}: {errors[0].message[:200]})")
    if payload["edgebench_version"] != __version__:
        raise BadJob(
            f"job made by edgebench {payload['edgebench_version']}, this worker runs {__version__}: "
            "variants and figures would not be comparable; upgrade the lab host or the controller"
        )
    if payload["model"] not in [m["key"] for m in payload["models"]]:
        raise BadJob(f"job names model {payload['model']!r}, which its farm does not list")
    return payload


_NOT_SENT = ("devices", "exclude", "models")  # a job carries its own device and the farm's models apart


def farm_settings(farm: FarmFile) -> dict:
    fields = {f.name: getattr(farm, f.name) for f in dataclasses.fields(farm) if f.name not in _NOT_SENT}
    plain = {"path": str(farm.path), "settings": plain_settings(farm.settings), "optional": list(farm.optional)}
    return {**fields, **plain}


def farm_of(payload: dict, local_files: dict[str, Path]) -> FarmFile:
    """The farm file a job came from, rebuilt on the lab host; `local_files` maps a sha256 to its local copy."""
    fields = dict(payload["farm"])

    def local(entry: dict | None) -> Path | None:
        return local_files[entry["sha256"]] if entry else None

    models = tuple(
        ModelJob(
            model=m["model"]["zoo"] if "zoo" in m["model"] else str(local(m["model"]["file"])),
            variants=m["variants"],
            dataset=local(m.get("dataset")),
            calibration=local(m.get("calibration")),
        )
        for m in payload["models"]
    )
    fields |= {"path": Path(fields["path"]), "settings": from_plain(fields["settings"]),
               "optional": tuple(fields.get("optional", ()))}  # fmt: skip
    return FarmFile(devices=(), exclude=(), models=models, **fields)


def job_key(farm_run: str, device: str, model: str) -> str:
    return key("job", farm_run, device, model)


def lease_key(device: str) -> str:
    return key("lease", device)


# Takes a job for a worker, atomically with the device's broker lease.
# KEYS: job, lease. ARGV: worker, lab, now, lease ttl (ms), deadline, max lost.
_CLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'unknown'} end
if state == 'done' or state == 'failed' or state == 'expired' then return {'finished', state} end
local holder = redis.call('GET', KEYS[2])
local owner = redis.call('HGET', KEYS[1], 'worker') or ''
if state == 'running' and ((holder and holder == owner) or owner == ARGV[1]) then return {'busy', owner} end
if holder and holder ~= ARGV[1] then return {'device-held', holder} end
local inherited = ''
if state == 'running' then
  local lost = tonumber(redis.call('HGET', KEYS[1], 'lost') or '0') + 1
  redis.call('HSET', KEYS[1], 'lost', lost)
  local why = 'lab worker ' .. owner .. ' (lab ' .. (redis.call('HGET', KEYS[1], 'lab') or '?') ..
              ') stopped mid-job: its device lease expired'
  redis.call('HSET', KEYS[1], 'lost_reason', why)
  if lost > tonumber(ARGV[6]) then
    redis.call('HSET', KEYS[1], 'state', 'failed', 'finished_at', ARGV[3],
               'reason', why .. ' (lost ' .. lost .. ' times; not retried again)')
    return {'gave-up', why}
  end
  inherited = why
elseif tonumber(ARGV[3]) > tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[1], 'state', 'expired', 'finished_at', ARGV[3], 'reason', 'not started by its deadline')
  return {'finished', 'expired'}
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[1], 'lab', ARGV[2], 'started_at', ARGV[3])
return {'claimed', inherited}
"""

# Keeps a lease: renewed when it is ours, taken again when it vanished (a broker restarted from an older
# snapshot, or our renewal came late), lost when someone else holds it. KEYS: lease. ARGV: worker, ttl (ms).
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0
"""

# Ends a job's attempt and gives the lease back, if it is still this worker's.
# KEYS: job, lease. ARGV: worker, state, reason, now, result JSON.
_FINISH = """
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'reason', ARGV[3], 'finished_at', ARGV[4], 'result', ARGV[5])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"""

# Expires a job that is still queued (a collector at the deadline). KEYS: job. ARGV: now, reason.
_EXPIRE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'queued' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'expired', 'finished_at', ARGV[1], 'reason', ARGV[2])
return 1
"""


@dataclass(frozen=True)
class Claim:
    outcome: str  # claimed, busy, device-held, finished, gave-up, unknown
    detail: str = ""  # claimed: why the job was inherited ("" when fresh); others: who or what


class JobRecords:
    """The job records of the broker, changed only through the scripts above."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._finish = client.register_script(_FINISH)
        self._expire = client.register_script(_EXPIRE)

    def create(self, payload: dict, at: float, pipe=None) -> None:
        """A queued job; its payload is kept beside it (what `farm status` shows, what a re-send would carry)."""
        farm_run, device, model = payload["farm_run"], payload["device"], payload["model"]
        (pipe or self.client).hset(job_key(farm_run, device, model), mapping={
            "state": "queued", "lost": 0, "deliveries": 0, "queued_at": at, "farm_run": farm_run,
            "device": device, "model": model, "payload": json.dumps(payload)})  # fmt: skip

    def claim(self, payload: dict, worker: str, lab: str, at: float, lease_ttl_s: float) -> Claim:
        answer = self._claim(
            keys=[job_key(payload["farm_run"], payload["device"], payload["model"]), lease_key(payload["device"])],
            args=[worker, lab, at, int(lease_ttl_s * 1000), payload["deadline"], MAX_LOST],
        )
        outcome, *rest = [a.decode() if isinstance(a, bytes) else str(a) for a in answer]
        return Claim(outcome, rest[0] if rest else "")

    def renew_lease(self, device: str, worker: str, lease_ttl_s: float) -> int:
        return int(self._renew(keys=[lease_key(device)], args=[worker, int(lease_ttl_s * 1000)]))

    def finish(self, payload: dict, worker: str, state: str, reason: str | None, at: float, result: dict) -> bool:
        keys = [job_key(payload["farm_run"], payload["device"], payload["model"]), lease_key(payload["device"])]
        return bool(self._finish(keys=keys, args=[worker, state, reason or "", at, json.dumps(result)]))

    def expire(self, farm_run: str, device: str, model: str, at: float, reason: str) -> bool:
        return bool(self._expire(keys=[job_key(farm_run, device, model)], args=[at, reason]))

    def read(self, farm_run: str, device: str, model: str) -> dict:
        raw = self.client.hgetall(job_key(farm_run, device, model))
        record = {k.decode(): v.decode() for k, v in raw.items()}
        for field in ("result", "payload"):
            if field in record:
                record[field] = json.loads(record[field])
        return record
