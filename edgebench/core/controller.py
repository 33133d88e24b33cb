"""Who is running edgebench, precisely enough to tell later that it died.

A lease or a run record names its controller. When another edgebench on the same host finds it, "the
pid is gone" is only proof of death if the pid is read in the same pid namespace of the same boot:
two containers share a hostname and reuse each other's pid numbers, and a reboot restarts numbering.
A pid that exists again but started at another time is a new process that reused the number.
Anything less certain (another host, another namespace, an older record without these fields) is
treated as alive: a lease is then released only by its expiry, as before.
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass

import psutil

START_TIME_TOLERANCE_S = 1.0  # create_time is derived from boot time and jiffies: equal within rounding


def _namespace() -> int | None:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def _boot() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


@dataclass(frozen=True)
class Controller:
    host: str
    pid: int
    started: float  # the process's start time (epoch seconds)
    pid_namespace: int | None = None
    boot: str | None = None

    @classmethod
    def current(cls) -> Controller:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, psutil.Process(pid).create_time(), _namespace(), _boot())

    @classmethod
    def of(cls, record: dict | None) -> Controller | None:
        """From a lease holder or a run record's "controller"; None where it does not say enough."""
        if not isinstance(record, dict):
            return None
        try:
            return cls(str(record["host"]), int(record["pid"]), float(record["started"]),
                       record.get("pid_namespace"), record.get("boot"))  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return None

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"

    def certainly_dead(self) -> bool:
        """True only when this controller ran here, in this pid namespace since this boot, and its process is
        gone (or its pid now belongs to a process started later)."""
        here = Controller.current()
        if (self.host, self.pid_namespace, self.boot) != (here.host, here.pid_namespace, here.boot):
            return False
        if None in (self.pid_namespace, self.boot):
            return False
        try:
            process = psutil.Process(self.pid)
            started = process.create_time()
            if process.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped by its parent
                return True
        except psutil.NoSuchProcess:
            return True
        except psutil.Error:
            return False
        return abs(started - self.started) > START_TIME_TOLERANCE_S
