"""The local device: the agent runs in a subprocess with the host's own Python."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from edgebench.inventory import Device
from edgebench.transport.base import CommandResult, Stalled, StderrTail, Transport


class LocalTransport(Transport):
    def __init__(self, device: Device):
        self.device = device
        self.bytes_pushed = 0

    def python(self) -> list[str]:
        # The device file's "python" applies to remote hosts; locally the
        # agent runs under the interpreter running edgebench unless told otherwise.
        return [sys.executable] if self.device.python == "python3" else shlex.split(self.device.python)

    def stage(self, local_path: Path, sha256: str) -> str:
        return str(Path(local_path).resolve())  # already on the device

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None,
        on_stderr_line: Callable[[str], None] | None = None,
        stall_timeout: float | None = None,
    ) -> CommandResult:
        process = subprocess.Popen(
            list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )
        # One reader per pipe: communicate() would also read stderr and race the
        # line-by-line reader for the progress lines and the error tail.
        tail = StderrTail(on_stderr_line)
        stdout: list[str] = []
        readers = [
            threading.Thread(target=_pump, args=(process.stderr, tail), daemon=True),
            threading.Thread(target=lambda: stdout.append(process.stdout.read()), daemon=True),
        ]
        for reader in readers:
            reader.start()
        timed_out = stalled = False
        deadline = time.monotonic() + timeout if timeout else None
        try:
            while process.poll() is None:
                self.check_cancelled()
                now = time.monotonic()
                if deadline and now > deadline:
                    timed_out = True
                    break
                if stall_timeout and now - tail.last_activity > stall_timeout:
                    stalled = True
                    break
                time.sleep(0.05)
            if timed_out or stalled:
                process.kill()
                process.wait()
        except BaseException:
            # Ctrl-C: the agent got SIGINT too when run from a terminal, but not
            # when edgebench itself was signalled alone; never leave it running.
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
        finally:
            # The process has ended, so both pipes reach end-of-file; close them once read.
            for reader in readers:
                reader.join(timeout=10)
            process.stdout.close()
            process.stderr.close()
        if stalled:
            raise Stalled(f"the agent sent nothing for {stall_timeout:g}s (stalled) and was killed")
        return CommandResult(None if timed_out else process.returncode, "".join(stdout), tuple(tail.lines), timed_out)


def _pump(stream, tail: StderrTail) -> None:
    for line in stream:
        tail.feed(line)
