"""`edgebench worker --lab LAB --devices DIR`: one lab host's worker, measuring the jobs of the devices it owns.

It consumes one dramatiq queue per device it owns (one job per device at a time), and runs
each job exactly as `farm run` runs a device: the same DeviceWorker, health checks,
quarantine, host lock and on-device lease, with this host's own results folder (a lab copy
of the farm run) and device files. Around that it keeps, on the broker:
- its announcement and the device lease of each job it runs, renewed every TTL/3 by a
  heartbeat thread; a lease that someone else took stops that job;
- the job's record: claimed atomically with the lease, finished with the run documents it
  shipped (every file of every run folder, with its sha256) for `farm collect`.

A job inherited from a worker that died (its lease expired) measures only what the lost
attempt had not, as a labelled new attempt, and takes over the dead run's on-device lease at
once. Stopped with Ctrl-C or SIGTERM, the worker ends its measurements at the next safe point,
ships what they measured and puts their jobs back in the queue: it resumes them when it is back.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from edgebench.core.errors import EdgebenchError
from edgebench.core.settings import from_plain, resolve
from edgebench.devices.inventory import Device
from edgebench.farm.scheduler import DeviceWorker, FarmEvent, FarmOptions, Inherited, run_request
from edgebench.labs.broker import ACTOR, BrokerError, Patience, dramatiq_broker, enqueue, key, now, queue_name
from edgebench.labs.jobs import BadJob, Claim, JobRecords, farm_of, validate_job
from edgebench.labs.registry import announce, withdraw
from edgebench.quantize.variants import default_cache_dir
from edgebench.results.farm_run import FarmRunStore, load_farm_document
from edgebench.results.layout import default_results_dir, farm_file, farm_folder, run_folder_files
from edgebench.results.store import mark_interrupted
from edgebench.run.pipeline import prepare_work

DEFAULT_LEASE_TTL_S = 30.0
CLAIM_POLL_S = 2.0


@dataclass(frozen=True)
class WorkerOptions:
    results_dir: Path | None = None
    cache_dir: Path | None = None
    lease_ttl_s: float = DEFAULT_LEASE_TTL_S
    trust_new_host: bool = False
    command: tuple[str, ...] = ()


@dataclass
class _Active:
    payload: dict
    cancel: threading.Event
    lease_lost: bool = False


class LabWorker:
    def __init__(self, lab: str, devices: list[Device], client: redis.Redis, options: WorkerOptions,
                 say: Callable[[str], None]):  # fmt: skip
        if not devices:
            raise EdgebenchError(f"lab {lab}: no device files to own; pass --devices DIR")
        self.lab, self.client, self.options, self.say = lab, client, options, say
        self.devices = {d.name: d for d in devices}
        self.id = f"{lab}.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(3)}"
        self.records = JobRecords(client)
        self.results_dir = Path(options.results_dir or default_results_dir())
        self.cache_dir = Path(options.cache_dir or default_cache_dir())
        self.active: dict[str, _Active] = {}
        self.active_lock = threading.Lock()
        self.stores: dict[str, FarmRunStore] = {}
        self.stores_lock = threading.Lock()
        self.stopping = threading.Event()
        self.broker = None

    # ---- life cycle ----------------------------------------------------------------------

    def serve(self, until: threading.Event) -> None:
        """Consume jobs until `until` is set (or Ctrl-C/SIGTERM reach the caller's thread, which then calls stop)."""
        import dramatiq

        self._announce()
        self.broker = dramatiq_broker(self.client, heartbeat_timeout_s=self.options.lease_ttl_s)
        queues = [queue_name(name) for name in self.devices]
        dramatiq.Actor(self._handle, broker=self.broker, actor_name=ACTOR, queue_name=queues[0], priority=0,
                       options={})  # fmt: skip
        self.worker = dramatiq.Worker(self.broker, queues=set(queues), worker_threads=len(queues), worker_timeout=500)
        self.worker.queue_prefetch = 1  # one job per device at a time: the next waits in Redis, not in our memory
        self.worker.start()
        for queue in queues:
            self.broker.declare_queue(queue)
        heartbeat = threading.Thread(target=self._heartbeat, name="edgebench-lab-heartbeat", daemon=True)
        heartbeat.start()
        self.say(f"worker {self.id} serving lab {self.lab}: {', '.join(self.devices)}")
        while not until.wait(0.5):
            pass
        self.stop()

    def stop(self) -> None:
        """Stop measuring at the next safe point, ship what was measured, give the jobs back to the queue."""
        self.stopping.set()
        with self.active_lock:
            for active in self.active.values():
                active.cancel.set()
        if getattr(self, "worker", None) is not None:
            self.worker.stop(timeout=600_000)
            self.worker = None
        with contextlib.suppress(redis.RedisError):
            withdraw(self.client, self.id)
        self.say(f"worker {self.id} stopped")

    def _announce(self) -> None:
        announce(self.client, self.id, self.lab, list(self.devices.values()), self.options.lease_ttl_s,
                 os.getpid(), socket.gethostname())  # fmt: skip

    def _heartbeat(self) -> None:
        period = self.options.lease_ttl_s / 3
        complained = False
        while not self.stopping.wait(period):
            try:
                self._announce()
                with self.active_lock:
                    active = list(self.active.items())
                for device, job in active:
                    if self.records.renew_lease(device, self.id, self.options.lease_ttl_s) == 0:
                        job.lease_lost = True
                        job.cancel.set()
                        self.say(f"{device}: the broker lease was taken by another worker; stopping this job")
                complained = False
            except redis.RedisError as error:
                if not complained:  # once per outage: the broker restarting is expected, not an emergency
                    self.say(f"broker unreachable ({error}); measuring on, retrying")
                    complained = True

    # ---- one job -------------------------------------------------------------------------

    def _handle(self, payload) -> None:
        """The actor: never raises (a failure is recorded on the job, with its reason)."""
        try:
            payload = validate_job(payload)
        except BadJob as error:
            self._refuse(payload, str(error))
            return
        device = self.devices.get(payload["device"])
        if device is None:  # only our devices' queues are consumed: a bug or a hand-made message
            self.say(f"refused a job for {payload['device']}, which lab {self.lab} does not own")
            return
        claim = self._claim(payload)
        name = f"{payload['farm_run']} {device.name} {payload['model']}"
        if claim is None:
            self._requeue(payload)
            return
        if claim.outcome != "claimed":
            self.say(f"{name}: not measured ({claim.outcome}: {claim.detail or 'nothing to do'})")
            return
        active = _Active(payload, threading.Event())
        with self.active_lock:
            self.active[device.name] = active
        try:
            state, reason, result = self._measure(payload, device, claim.detail, active)
        except Exception as error:  # a bug must not lose the job: it is failed with the reason, visibly
            state, reason, result = "failed", f"internal error: {type(error).__name__}: {error}", {}
        finally:
            with self.active_lock:
                self.active.pop(device.name, None)
        interrupted = active.cancel.is_set() and not active.lease_lost
        job_state = "queued" if interrupted else ("done" if state == "done" else "failed")
        result = {**result, "device_state": state, "lab": self.lab, "worker": self.id}
        Patience().call(lambda: self.records.finish(payload, self.id, job_state, reason, now(), result),
                        f"recording {name}")  # fmt: skip
        if interrupted:
            self._requeue(payload)
        self.say(f"{name}: {'put back in the queue (worker stopping)' if interrupted else state}"
                 + (f" ({reason})" if reason and not interrupted else ""))  # fmt: skip

    def _claim(self, payload: dict) -> Claim | None:
        """The job and its device lease; waits while another worker's job holds the device. None: stopping."""
        while True:
            claim = Patience().call(lambda: self.records.claim(payload, self.id, self.lab, now(),
                                                               self.options.lease_ttl_s), "claiming a job")  # fmt: skip
            if claim.outcome != "device-held":
                return claim
            if self.stopping.wait(CLAIM_POLL_S):
                return None

    def _requeue(self, payload: dict) -> None:
        Patience().call(lambda: enqueue(self.broker, payload), "putting a job back in the queue")

    def _refuse(self, payload, reason: str) -> None:
        self.say(f"refused a message: {reason}")
        if isinstance(payload, dict) and all(isinstance(payload.get(k), str) for k in ("farm_run", "device", "model")):
            job = key("job", payload["farm_run"], payload["device"], payload["model"])
            with contextlib.suppress(redis.RedisError):
                if self.client.exists(job):
                    self.client.hset(job, mapping={"state": "failed", "reason": f"refused by lab {self.lab}: {reason}",
                                                   "finished_at": now()})  # fmt: skip

    def _measure(
        self, payload: dict, device: Device, lost_reason: str, active: _Active
    ) -> tuple[str, str | None, dict]:
        files = self._fetch_files(payload)
        farm = farm_of(payload, files)
        model_key = payload["model"]
        index = [m["key"] for m in payload["models"]].index(model_key)
        one_model = dataclasses.replace(farm, models=(farm.models[index],))
        options = FarmOptions(
            results_dir=self.results_dir,
            cache_dir=self.cache_dir,
            trust_new_host=self.options.trust_new_host,
            command=[*self.options.command, "# job", payload["farm_run"], device.name, model_key],
        )
        work = prepare_work(run_request(one_model, one_model.models[0], "", options))
        planned = payload["models"][index]
        made = {v.name: v.sha256 for v in work.variants}
        if made != planned["planned_sha256"]:
            differ = sorted(
                n for n in {*made, *planned["planned_sha256"]} if made.get(n) != planned["planned_sha256"].get(n)
            )
            # Figures of other bytes under the same name would be silently wrong: refuse, saying which.
            return "failed", (f"lab {self.lab}'s {model_key} variants {', '.join(differ)} are not the bytes the "
                              "controller planned (another quantizer or edgebench install); align the lab host's "
                              "ai-edge-quantizer with the controller's"), {}  # fmt: skip
        store = self._lab_store(payload, device)
        inherited = self._inherit(store, device.name, model_key, lost_reason)
        worker = DeviceWorker(one_model, options, self.results_dir, store, device, [work], [model_key],
                              self._on_event, active.cancel, inherited=inherited)  # fmt: skip
        worker.run()
        entry = store.device(device.name)
        runs = [r for r in entry["runs"] if r["model"] == model_key]
        for run in runs:
            self._ship(payload, device.name, run)
        result = {
            "emulated": device.emulated,
            "address": device.address,
            "runs": [{k: r[k] for k in ("model", "run_id", "attempt", "folder", "status")} for r in runs],
        }
        if lost_reason:
            result["inherited"] = lost_reason
        return entry["state"], entry["reason"], result

    def _inherit(self, store: FarmRunStore, device: str, model_key: str, lost_reason: str) -> Inherited:
        """Earlier attempts of this job on this host: a lost one's runs are closed and its lease taken over."""
        runs = [r for r in store.device(device)["runs"] if r["model"] == model_key]
        if not runs:
            return Inherited()
        dead = tuple(r["run_id"] for r in runs if r.get("status") == "running")
        for run_id in dead:
            self._close_lost_run(store, device, run_id, lost_reason or "its worker stopped mid-run")
        return Inherited(attempt=max(r.get("attempt", 1) for r in runs) + 1, retry_of=runs[-1]["run_id"],
                         dead_runs=dead)  # fmt: skip

    def _close_lost_run(self, store: FarmRunStore, device: str, run_id: str, reason: str) -> None:
        entry = next(r for r in store.device(device)["runs"] if r["run_id"] == run_id)
        mark_interrupted(self.results_dir / entry["folder"], reason)
        store.update_run(device, run_id, "interrupted")

    def _lab_store(self, payload: dict, device: Device) -> FarmRunStore:
        farm_run = payload["farm_run"]
        with self.stores_lock:
            store = self.stores.get(farm_run)
            if store is None:
                folder = farm_folder(self.results_dir, farm_run)
                if farm_file(folder).is_file():
                    store = FarmRunStore(folder, load_farm_document(folder))
                else:
                    settings = payload["farm"]
                    store = FarmRunStore.create(self.results_dir, farm_run, {
                        "farm": {"name": settings["name"], "path": settings["path"], "sha256": settings["sha256"]},
                        "command": list(self.options.command),
                        "baseline": {"policy": settings["baseline"], "threshold": settings["threshold"]},
                        "models": [{"key": m["key"], "model": m["model"].get("zoo") or m["model"]["file"]["name"],
                                    "variants": m["planned"]} for m in payload["models"]],
                        "planned_devices": [], "rounds": resolve(from_plain(settings["settings"])).rounds,
                        "labs": {"lab": self.lab},
                    })  # fmt: skip
                self.stores[farm_run] = store
            if device.name not in store.document["planned_devices"]:
                store.document["planned_devices"].append(device.name)
            return store

    def _fetch_files(self, payload: dict) -> dict[str, Path]:
        """Model, data set and calibration files of the farm, from the broker into this host's cache, checked."""
        wanted = [e for m in payload["models"] for e in (m["model"].get("file"), m.get("dataset"), m.get("calibration"))
                  if e]  # fmt: skip
        found = {}
        for entry in wanted:
            path = self.cache_dir / "lab-files" / entry["sha256"] / Path(entry["name"]).name
            if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
                data = Patience().call(lambda e=entry: self.client.get(key("blob", e["sha256"])), "fetching a file")
                if data is None or hashlib.sha256(data).hexdigest() != entry["sha256"]:
                    raise BrokerError(f"{entry['name']} (sha256 {entry['sha256'][:12]}) is no longer on the broker")
                path.parent.mkdir(parents=True, exist_ok=True)
                temporary = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
                temporary.write_bytes(data)
                os.replace(temporary, path)
            found[entry["sha256"]] = path
        return found

    def _ship(self, payload: dict, device: str, run: dict) -> None:
        """Every file of a run folder onto the broker, with its sha256, for `farm collect`."""
        folder = self.results_dir / run["folder"]
        files = {}
        if folder.is_dir():
            for path in run_folder_files(folder):
                data = path.read_bytes()
                files[path.name] = {"sha256": hashlib.sha256(data).hexdigest(),
                                    "base64": base64.b64encode(data).decode()}  # fmt: skip
        document = {"device": device, "lab": self.lab, **{k: run[k] for k in ("model", "run_id", "attempt", "folder",
                    "status")}, "files": files}  # fmt: skip
        Patience().call(lambda: self.client.hset(key("farm", payload["farm_run"], "runs"), run["run_id"],
                                                 json.dumps(document)), "shipping a run")  # fmt: skip

    def _on_event(self, event: FarmEvent) -> None:
        if event.state in ("done", "failed", "quarantined", "interrupted", "absent") or (
            event.state == "measuring" and event.detail.endswith((": ok", ": failed"))
        ):
            self.say(f"{event.device}: {event.state} {event.detail}".rstrip())
