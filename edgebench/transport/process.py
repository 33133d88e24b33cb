"""Run a local process with a deadline, stall detection and cancellation; stdout whole, stderr line by line.

The local device runs the agent this way, and the ADB transport runs `adb shell` this way: in
both the command is a process on this host whose pipes carry what the device says.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgebench.transport.base import StderrTail


@dataclass
class ProcessOutcome:
    exit_code: int | None  # None when it was killed for the deadline or a stall
    stdout: str
    stderr_tail: tuple[str, ...]
    timed_out: bool = False
    stalled: bool = False


def run_process(
    argv: Sequence[str],
    *,
    timeout: float | None,
    on_stderr_line: Callable[[str], None] | None,
    stall_timeout: float | None,
    check_cancelled: Callable[[], None],
    env: dict | None = None,
) -> ProcessOutcome:
    process = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        errors="replace", env=env,
    )  # fmt: skip
    # One reader per pipe: communicate() would also read stderr and race the
    # line-by-line reader for the progress lines and the error tail.
    tail = StderrTail(on_stderr_line)
    stdout: list[str] = []
    readers = [
        threading.Thread(target=_pump, args=(process.stderr, tail), daemon=True),
        threading.Thread(target=_collect, args=(process.stdout, stdout, tail), daemon=True),
    ]
    for reader in readers:
        reader.start()
    timed_out = stalled = False
    deadline = time.monotonic() + timeout if timeout else None
    try:
        while process.poll() is None:
            check_cancelled()
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
        # Ctrl-C: the child got SIGINT too when run from a terminal, but not
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
    code = None if timed_out or stalled else process.returncode
    return ProcessOutcome(code, "".join(stdout), tuple(tail.lines), timed_out, stalled)


def _pump(stream, tail: StderrTail) -> None:
    for line in stream:
        tail.feed(line)


def _collect(stream, chunks: list[str], tail: StderrTail) -> None:
    """stdout whole; each line is also a sign of life (a phone without shell protocol v2 sends its stderr,
    heartbeats included, on stdout)."""
    for line in stream:
        chunks.append(line)
        tail.last_activity = time.monotonic()
