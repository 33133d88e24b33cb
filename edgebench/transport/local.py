"""The local device: the agent runs in a subprocess with the host's own Python."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from edgebench.transport.base import CommandResult, Endpoint, Stalled, Transport
from edgebench.transport.process import run_process


class LocalTransport(Transport):
    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self.bytes_pushed = 0

    def python(self) -> list[str]:
        # The device file's "python" applies to remote hosts; locally the
        # agent runs under the interpreter running edgebench unless told otherwise.
        return [sys.executable] if self.endpoint.python == "python3" else shlex.split(self.endpoint.python)

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
        outcome = run_process(
            argv, timeout=timeout, on_stderr_line=on_stderr_line, stall_timeout=stall_timeout,
            check_cancelled=self.check_cancelled,
        )  # fmt: skip
        if outcome.stalled:
            raise Stalled(f"the agent sent nothing for {stall_timeout:g}s (stalled) and was killed")
        return CommandResult(outcome.exit_code, outcome.stdout, outcome.stderr_tail, outcome.timed_out)
