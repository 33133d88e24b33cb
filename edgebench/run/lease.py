"""One measurement per device at a time: a lock on this host and a lease on the device itself.

Two runs on one board measure each other's noise (seen: int8 p50 0.087 -> 0.20 ms, both exit
0, both indexed as baselines). Two layers stop that:
- the host lock (filelock), keyed by the board's address, not the device file's name, so two
  files naming one board still collide; it serializes runs from this controller, for every
  transport;
- the device lease, a folder in the device's workdir made by the agent with mkdir (agent.lease),
  holding owner, pid, controller host and expiry; it serializes controllers. It is renewed
  before every measurement for the agent's timeout plus a margin, so a controller that dies
  leaves it behind for at most that long, and only an expired lease is taken over.
A run that finds the device busy waits up to --wait seconds, then stops with one line saying
who holds it since when (exit 2).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from filelock import FileLock, Timeout

from edgebench.core.controller import Controller
from edgebench.core.errors import Cancelled, EdgebenchError
from edgebench.core.fileio import atomic_write_json
from edgebench.devices.inventory import Device

LEASE_MARGIN_S = 120.0
POLL_S = 2.0


class DeviceBusy(EdgebenchError):
    """Another run holds the device; nothing was measured."""


class LeftoverAgent(DeviceBusy):
    """An agent of an earlier measurement still runs on the device and did not stop when told to."""


@dataclass(frozen=True)
class Owner:
    id: str  # the run id: unique per run
    controller: str  # the host running edgebench
    pid: int
    command: str
    # Runs known to be dead (a lab worker the broker saw die): their leases are taken over at once,
    # not after their expiry. Only the lab worker that inherits their job names them.
    replaces: tuple[str, ...] = ()
    # This process exactly (Controller.as_dict): lets another edgebench on this host see that it died.
    process: dict | None = None

    @classmethod
    def of_run(cls, run_id: str, command: list[str], replaces: tuple[str, ...] = ()) -> Owner:
        me = Controller.current()
        return cls(run_id, me.host, me.pid, " ".join(command), tuple(replaces), me.as_dict())

    def replacing(self, run_ids: tuple[str, ...]) -> Owner:
        return replace(self, replaces=(*self.replaces, *run_ids))


def dead_holder(holder: dict | None) -> bool:
    """A lease held by an edgebench of this host that has died (SIGKILL, power cut of a container): it can be
    taken over at once instead of blocking the board until it expires (the agent's timeout + 2 minutes)."""
    controller = Controller.of((holder or {}).get("process"))
    return controller is not None and controller.certainly_dead()


def describe(holder: dict | None) -> str:
    if not holder:
        return "another run (no owner recorded yet)"
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(holder.get("since", 0)))
    return f"run {holder.get('id')} (pid {holder.get('pid')} on {holder.get('controller')}) since {since}"


def default_lock_dir() -> Path:
    if "EDGEBENCH_LOCK_DIR" in os.environ:
        return Path(os.environ["EDGEBENCH_LOCK_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgebench" / "locks"


def device_key(device: Device) -> str:
    """The board, not the file: transport, user, address and port."""
    return re.sub(r"[^A-Za-z0-9_.@-]", "_", device.options.lock_key())


@contextlib.contextmanager
def host_lock(
    device: Device, owner: Owner, wait: float, lock_dir: Path | None = None, cancel: threading.Event | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:  # fmt: skip
    """`on_wait` hears, every few seconds of waiting, who holds the device and for how long it was waited on."""
    folder = Path(lock_dir or default_lock_dir())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{device_key(device)}.lock"
    lock = FileLock(str(path), thread_local=False)
    started = time.monotonic()
    deadline = started + wait
    while True:  # in short steps, so a cancelled farm stops waiting at once
        try:
            lock.acquire(timeout=max(0.0, min(POLL_S, deadline - time.monotonic())))
            break
        except Timeout:
            holder = _read(path.with_suffix(".owner.json"))
            if time.monotonic() >= deadline:
                raise DeviceBusy(_busy_message(device.name, holder, wait)) from None
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled while waiting for the device") from None
            if on_wait:
                on_wait(waiting_message(device.name, holder, time.monotonic() - started, wait))
    try:
        atomic_write_json(path.with_suffix(".owner.json"), {**asdict(owner), "since": time.time()})
        yield
    finally:
        lock.release()


class DeviceLease:
    """The lease on the device. `call(action)` runs the agent's --lease there and returns its answer
    (the runner owns the agent protocol), so the lease works wherever the agent runs."""

    def __init__(self, call: Callable[..., dict], device_name: str, cancel: threading.Event | None = None):
        self.call, self.device_name = call, device_name
        self.cancel = cancel or threading.Event()
        self.held = False
        self.taken_from: dict | None = None  # the dead controller's lease this one replaced, if any
        self.stopped_agents: list[dict] = []  # leftover agents the device stopped when the lease was taken

    def acquire(self, wait: float, on_wait: Callable[[str], None] | None = None) -> None:
        started = time.monotonic()
        deadline = started + wait
        while True:
            answer = self.call("acquire")
            holder = answer.get("holder")
            if not answer.get("acquired") and dead_holder(holder):
                answer = self.call("acquire", replaces=(holder["id"],))
                if answer.get("acquired"):
                    self.taken_from = holder
            if answer.get("acquired"):
                self.held = True
                self.stopped_agents = self._leftovers(answer)
                return
            if time.monotonic() + POLL_S > deadline:
                raise DeviceBusy(_busy_message(self.device_name, answer.get("holder"), wait))
            if on_wait:
                on_wait(waiting_message(self.device_name, answer.get("holder"), time.monotonic() - started, wait))
            if self.cancel.wait(POLL_S):
                raise Cancelled("cancelled while waiting for the device lease")

    def renew(self) -> list[dict]:
        """Hold the device for one more measurement; returns the leftover agents the device stopped first."""
        if not self.held:
            return []
        answer = self.call("renew")
        if not answer.get("acquired"):
            self.held = False
            raise DeviceBusy(f"the lease on {self.device_name} was lost (it expired and was taken over); stopping")
        return self._leftovers(answer)

    def _leftovers(self, answer: dict) -> list[dict]:
        found = answer.get("stopped_agents") or []
        running = [agent for agent in found if not agent.get("stopped")]
        if running:
            raise LeftoverAgent(
                f"an earlier agent (pid {running[0]['pid']}, measuring {running[0].get('model')}) is still running "
                f"on {self.device_name} and could not be stopped; measuring beside it would measure both"
            )
        return found

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(EdgebenchError, OSError):  # an expired lease is harmless
                self.call("release")
            self.held = False


def waiting_message(device_name: str, holder: dict | None, waited: float, wait: float) -> str:
    return f"waiting for device {device_name} (held by {describe(holder)}): {waited:.0f} s of {wait:g} s"


def _busy_message(device_name: str, holder: dict | None, wait: float) -> str:
    waited = f" after waiting {wait:g}s" if wait else ""
    return (f"device {device_name} is in use by {describe(holder)}{waited}; pass --wait SECONDS to queue "
            "behind it")  # fmt: skip


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
