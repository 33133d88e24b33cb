"""Ctrl-C, SIGTERM and SIGHUP end a command the same way: everything measured is kept, the exit code says which."""

from __future__ import annotations

import signal


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a CI job cancelled, a terminal closed): ended like Ctrl-C, so every
    measurement taken is kept and the run is marked interrupted, never left "running"."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def terminate(signum, _frame):
    raise Terminated(signum)


def interrupted_exit_code(interruption: KeyboardInterrupt) -> int:
    """128 + the signal's number, as a shell reports it: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + getattr(interruption, "signum", signal.SIGINT)
