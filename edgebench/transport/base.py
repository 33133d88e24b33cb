"""The transport contract: put files on a device and run commands there."""

from __future__ import annotations

import base64
import shlex
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.core.errors import Cancelled, EdgebenchError

STDERR_TAIL_LINES = 20


class DeviceError(EdgebenchError):
    """The device cannot be reached or used; the message says which and what to do."""


class ConnectionLost(DeviceError):
    """The device went away in the middle of a command."""


class Unreachable(DeviceError):
    """The device did not answer (timed out, refused, no SSH banner): worth another try later,
    unlike a refused host key or login."""


class DiskFull(DeviceError):
    """The device has no room for a file: that variant fails, smaller ones may still fit."""


class Stalled(DeviceError):
    """The command sent nothing for the stall timeout (a frozen board or session); its connection was dropped,
    so the next command starts on a fresh one. Not the device gone: the next variant may still run."""


SHORT_COMMAND_S = 60.0  # a short shell command (facts, checks, a lease) that takes longer: the device is not answering


@dataclass(frozen=True)
class CommandResult:
    exit_code: int | None  # None when it was killed for the timeout
    stdout: str
    stderr_tail: tuple[str, ...] = field(default=())
    timed_out: bool = False


class StderrTail:
    """Keeps the last lines of a command's stderr and hands every line to a callback."""

    def __init__(self, on_line: Callable[[str], None] | None):
        self.lines: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self.on_line = on_line
        self.last_activity = time.monotonic()  # for stall detection: when the command last said anything

    def feed(self, line: str) -> None:
        self.last_activity = time.monotonic()
        line = line.rstrip("\n")
        if self.on_line:
            self.on_line(line)
        self.lines.append(line)


@dataclass(frozen=True)
class Endpoint:
    """What every transport needs of a device beside its own options section: a name for messages, the device's
    Python command line, and the folder staged files go to."""

    name: str
    python: str = "python3"
    workdir: str = "~/.cache/edgebench"


class HealthCheckFailed(DeviceError):
    """The device answered but is not fit to measure on (hot, throttled, full, no runtime)."""


class Transport(ABC):
    """One connection to one device for a whole run; a context manager."""

    #: bytes sent to the device by stage() during this connection's life
    bytes_pushed: int = 0
    #: set by the runner: when this event is set, a running command is ended and Cancelled raised
    cancel: threading.Event | None = None

    def check_cancelled(self) -> None:
        """Called by run() while it waits: a cancelled run ends its command (the caller's cleanup kills it)."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("cancelled")

    def workdir(self) -> str | None:
        """The folder on the device that staged files go to; None when nothing is copied (local)."""
        return None

    @abstractmethod
    def python(self) -> list[str]:
        """The device's interpreter command, as argv."""

    @abstractmethod
    def stage(self, local_path: Path, sha256: str) -> str:
        """Make a file available on the device (content-addressed); return its path there."""

    @abstractmethod
    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None,
        on_stderr_line: Callable[[str], None] | None = None,
        stall_timeout: float | None = None,
    ) -> CommandResult:
        """Run argv on the device; stdout whole, stderr line by line.

        `timeout` ends the command (timed_out result); `stall_timeout` raises Stalled when it
        sends nothing at all for that long."""

    def shell(self, command: str, timeout: float | None = None) -> CommandResult:
        """A short shell command on the device (facts, checks, a plain-shell lease): its deadline is kept, or
        Unreachable is raised. What the benchmark_model backend needs of any transport that has a shell."""
        deadline = timeout or SHORT_COMMAND_S
        result = self.run(["sh", "-c", command], timeout=deadline)
        if result.timed_out:
            raise Unreachable(f"the device did not finish a short command within {deadline:g}s")
        return result

    def read_bytes(self, path: str) -> bytes | None:
        """A small file from the device (a result proto), or None when it is not there; base64 through the shell,
        which every device has."""
        result = self.shell(f"base64 {shlex.quote(path)} 2>/dev/null")
        if result.exit_code != 0:
            return None
        try:
            return base64.b64decode("".join(result.stdout.split()), validate=True)
        except ValueError:
            return None

    def lease_dir(self) -> str | None:
        """Where the device lease lives on the device; None when the host lock already covers the device
        (the local machine is only ever reached from this host)."""
        return None

    def close(self) -> None:  # noqa: B027 - a transport without a connection has nothing to close
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
