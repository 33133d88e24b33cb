"""The ADB transport: a phone driven through the stock `adb` client (push, shell, get-state).

The same contract as SSH, built on what adb gives:
- every adb call has a deadline; `adb shell` uses shell protocol v2, so the remote exit code
  comes back as adb's own;
- every remote argument is quoted with shlex.quote (adb shell hands one string to the phone's sh);
- pushes are content-addressed in the workdir and skipped when `sha256sum` on the phone already
  says so; a push goes to a .part name and is renamed when whole;
- a watchdog: each command runs under the phone's `timeout -s KILL` for its deadline plus a margin,
  and records its process group, which is killed when the host gives up (deadline, stall, Ctrl-C,
  a cancelled farm), so an interrupted run leaves nothing running on the phone even if adbd
  keeps orphans;
- adb's own failures (no adb, device absent, offline, unauthorized, full disk) become one line.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
import secrets
import shlex
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from edgebench.transport.base import (
    CommandResult,
    ConnectionLost,
    DeviceError,
    DiskFull,
    Endpoint,
    Stalled,
    Transport,
    Unreachable,
)
from edgebench.transport.options import AdbOptions
from edgebench.transport.process import run_process

WATCHDOG_MARGIN_S = 30.0  # the phone kills a command this long after the host's own deadline
KILL_TIMEOUT_S = 10.0
# What the adb client prints (stderr, exit 1) when the device, not the command, failed.
_LOST = re.compile(r"^(error: (device offline|closed|protocol fault.*|device '.*' not found|no devices.*)|"
                   r"adb: error: .*(failed to read|connection reset).*)$", re.IGNORECASE)  # fmt: skip


class AdbTransport(Transport):
    def __init__(self, endpoint: Endpoint, options: AdbOptions):
        self.endpoint = endpoint
        self.options = options
        self.bytes_pushed = 0
        self._ready = False
        self.has_watchdog: bool | None = None  # does the phone have `timeout` (checked once)
        self._lost: str | None = (
            None  # why the phone stopped answering: later commands fail at once, not each by its deadline
        )

    # -- adb itself -----------------------------------------------------------------------------

    def _adb(self, args: Sequence[str], timeout: float, *, serial: bool = True) -> subprocess.CompletedProcess:
        argv = [self.options.adb, *(["-s", self.options.serial] if serial else []), *args]
        try:
            return subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout,
                                  stdin=subprocess.DEVNULL)  # fmt: skip
        except FileNotFoundError:
            raise DeviceError(
                f"device {self.endpoint.name!r}: the adb client {self.options.adb!r} is not installed "
                '(apt-get install adb, or set [adb] adb = "/path/to/adb")'
            ) from None
        except subprocess.TimeoutExpired:
            raise Unreachable(
                f"device {self.endpoint.name!r} ({self.options.serial}): `adb {args[0]}` did not finish within "
                f"{timeout:g}s"
            ) from None

    def _listed_state(self) -> str | None:
        """This serial's state in `adb devices` (device, offline, unauthorized), or None when it is not listed."""
        try:
            listed = self._adb(["devices"], self.options.connect_timeout, serial=False)
        except DeviceError:
            return None
        for line in listed.stdout.splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0] == self.options.serial:
                return fields[1] if fields[1] != "device" else None
        return None

    def state_error(self, text: str) -> DeviceError:
        """adb's words for a device it cannot use -> one line saying what to do."""
        who = f"device {self.endpoint.name!r} ({self.options.serial})"
        lowered = text.lower()
        if "unauthorized" in lowered or "failed to authenticate" in lowered:
            return DeviceError(f"{who} is unauthorized: accept the 'Allow USB debugging' prompt on the phone")
        if "offline" in lowered:
            return Unreachable(f"{who} is offline: reconnect it (USB cable, or `adb connect` over TCP)")
        if "failed to connect" in lowered or "cannot connect" in lowered:
            reason = text.strip().splitlines()[-1].rpartition(":")[2].strip() or "no answer"
            return Unreachable(f"{who} is not reachable: adb connect failed ({reason})")
        if "not found" in lowered or "no devices" in lowered:
            return Unreachable(f"{who} is not connected: `adb devices` does not list it (USB cable, or adb connect)")
        return DeviceError(f"{who}: adb says: {text.strip().splitlines()[-1] if text.strip() else 'nothing'}")

    def connect(self) -> None:
        """Reach the phone once per transport: `adb connect` for host:port, then get-state must say device."""
        if self._lost:
            raise ConnectionLost(self._lost)
        if self._ready:
            return
        if self.options.over_tcp:
            try:
                connected = self._adb(["connect", self.options.serial], self.options.connect_timeout, serial=False)
                said = (connected.stdout + connected.stderr).strip()
            except Unreachable as error:
                said = str(error)
            # adb connect exits 0 even when it failed; its words say which, or the server's list does
            # (a phone that took the connection and never answered is listed as offline).
            if "connected to" not in said:
                raise self.state_error(self._listed_state() or said)
        state = self._adb(["get-state"], self.options.connect_timeout)
        if state.returncode != 0 or state.stdout.strip() != "device":
            raise self.state_error(state.stderr or state.stdout)
        if self.has_watchdog is None:
            # toybox has had `timeout` since Android 6; an older phone runs commands without the watchdog.
            found = self._adb(["shell", "command -v timeout >/dev/null && echo yes"], self.options.connect_timeout)
            self.has_watchdog = "yes" in found.stdout
        self._ready = True

    # -- the Transport contract ----------------------------------------------------------------

    def python(self) -> list[str]:
        return shlex.split(self.endpoint.python)

    def workdir(self) -> str:
        return self.endpoint.workdir

    def lease_dir(self) -> str:
        return self.endpoint.workdir

    def shell(self, command: str, timeout: float | None = None) -> CommandResult:
        return super().shell(command, timeout or self.options.command_timeout)

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None,
        on_stderr_line: Callable[[str], None] | None = None,
        stall_timeout: float | None = None,
    ) -> CommandResult:
        return self._shell(shlex.join(argv), timeout=timeout, on_stderr_line=on_stderr_line,
                           stall_timeout=stall_timeout)  # fmt: skip

    def _shell(self, command: str, *, timeout: float | None, on_stderr_line=None,
               stall_timeout: float | None = None) -> CommandResult:  # fmt: skip
        self.connect()
        workdir = shlex.quote(self.workdir())
        pidfile = posixpath.join(self.workdir(), f".pid-{secrets.token_hex(4)}")
        watchdog = f"timeout -s KILL {int((timeout or 3600) + WATCHDOG_MARGIN_S)} " if self.has_watchdog else ""
        # $$ is the shell adbd started: everything the command starts is in its process tree.
        script = (
            f"mkdir -p {workdir} && echo $$ > {shlex.quote(pidfile)} && cd {workdir} && "
            f"{watchdog}sh -c {shlex.quote(command)}; code=$?; rm -f {shlex.quote(pidfile)}; exit $code"
        )
        argv = [self.options.adb, "-s", self.options.serial, "shell", script]
        try:
            outcome = run_process(argv, timeout=timeout, on_stderr_line=on_stderr_line, stall_timeout=stall_timeout,
                                  check_cancelled=self.check_cancelled)  # fmt: skip
        except FileNotFoundError:
            raise DeviceError(f"device {self.endpoint.name!r}: the adb client {self.options.adb!r} is not installed "
                              "(apt-get install adb)") from None  # fmt: skip
        except BaseException:
            self._kill_remote(pidfile)
            raise
        if outcome.timed_out or outcome.stalled:
            self._ready = False  # the next command checks the phone again
            if not self._responsive():
                # A frozen phone: every later command would wait out its own deadline. Its watchdog
                # (timeout -s KILL) ends the command if it ever runs again.
                how = f"sent nothing for {stall_timeout:g}s (stalled)" if outcome.stalled else "ran past its deadline"
                self._lost = (
                    f"device {self.endpoint.name!r} ({self.options.serial}) stopped answering: no reply within "
                    f"{self.options.connect_timeout:g}s after a command {how}"
                )
                raise ConnectionLost(self._lost)
            self._kill_remote(pidfile)
            if outcome.stalled:
                raise Stalled(f"the device sent nothing for {stall_timeout:g}s (stalled); its command was killed")
        last = outcome.stderr_tail[-1] if outcome.stderr_tail else ""
        if outcome.exit_code is not None and outcome.exit_code != 0 and _LOST.match(last.strip()):
            self._ready = False
            raise ConnectionLost(f"device {self.endpoint.name!r} ({self.options.serial}) went away: {last.strip()}")
        return CommandResult(outcome.exit_code, outcome.stdout, outcome.stderr_tail, outcome.timed_out)

    def _responsive(self) -> bool:
        try:
            answer = subprocess.run([self.options.adb, "-s", self.options.serial, "shell", "echo alive"],
                                    capture_output=True, text=True, timeout=self.options.connect_timeout,
                                    stdin=subprocess.DEVNULL)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return False
        return "alive" in answer.stdout

    def _kill_remote(self, pidfile: str) -> None:
        """Best effort, bounded: the command's whole process tree on the phone, found through ps (toybox and
        procps both print pid,ppid), not its process group: `timeout` puts the command in a group of its own,
        and a group kill could reach adbd where adbd does not start a session per command. Stopped first, so
        nothing forks while it is being killed. A frozen phone ignores this; its watchdog ends the command."""
        script = (
            f'p=$(cat {shlex.quote(pidfile)} 2>/dev/null); [ -n "$p" ] || exit 0; '
            "tree() { echo $1; for c in $(ps -A -o pid,ppid | awk -v p=$1 'NR>1 && $2==p {print $1}'); "
            "do tree $c; done; }; pids=$(tree $p); kill -STOP $pids 2>/dev/null; kill -9 $pids 2>/dev/null; "
            f"rm -f {shlex.quote(pidfile)}"
        )
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run([self.options.adb, "-s", self.options.serial, "shell", script], capture_output=True,
                           timeout=KILL_TIMEOUT_S, stdin=subprocess.DEVNULL)  # fmt: skip

    def stage(self, local_path: Path, sha256: str) -> str:
        local_path = Path(local_path)
        remote = posixpath.join(self.workdir(), "by-sha256", sha256, local_path.name)
        quoted = shlex.quote(remote)
        # One round trip: the file's hash, or (not there yet) its folder made for the push.
        have = self.shell(f"sha256sum {quoted} 2>/dev/null || mkdir -p {shlex.quote(posixpath.dirname(remote))}")
        if have.stdout.split()[:1] == [sha256]:
            return remote  # already there, whole
        size = local_path.stat().st_size
        partial = f"{remote}.part-{secrets.token_hex(4)}"
        deadline = self.options.command_timeout + size / (self.options.push_rate_mb_s * 1e6)
        pushed = self._adb(["push", str(local_path), partial], deadline)
        if pushed.returncode != 0:
            said = (pushed.stderr or pushed.stdout).strip()
            self.shell(f"rm -f {shlex.quote(partial)}")
            if "no space left" in said.lower():
                raise DiskFull(
                    f"device {self.endpoint.name!r} is out of disk space in {self.workdir()}: pushing "
                    f"{local_path.name} ({size:,} bytes) failed; free space on the phone or set another workdir"
                )
            if _LOST.match(said.splitlines()[-1] if said else "") or "device" in said.lower():
                raise self.state_error(said)
            raise DeviceError(f"cannot push {local_path.name} to {self.options.serial}:{remote}: "
                              f"{said.splitlines()[-1] if said else 'adb push failed'}")  # fmt: skip
        moved = self.shell(f"mv {shlex.quote(partial)} {quoted}")
        if moved.exit_code != 0:
            raise DeviceError(f"cannot place {local_path.name} at {remote} on {self.options.serial}: "
                              f"{' | '.join(moved.stderr_tail[-2:])}")  # fmt: skip
        self.bytes_pushed += size
        return remote
