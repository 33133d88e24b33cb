"""How long a run still has to go, from what its measurements took so far. Pure: times are passed in.

A run's measurements are not alike: the first round of each variant also evaluates accuracy (seconds on a
slow variant), the later rounds only time it. So the estimate keeps the two apart: a measurement still to
come in round 1 is guessed from the round-1 measurements done (their mean), a later round of a variant from
that variant's own timing part in round 1 (its time before accuracy began). Before the first measurement
ends there is no estimate; "about" is all it ever claims.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence


class Eta:
    def __init__(self, variants: Sequence[str], rounds: int):
        self.pending = [(name, r) for r in range(1, rounds + 1) for name in variants]
        self.first_round: dict[str, float] = {}  # variant -> seconds of its whole round-1 measurement
        self.timing: dict[str, float] = {}  # variant -> seconds of round 1 before accuracy began
        self._started: tuple[str, int, float] | None = None
        self._accuracy_from: float | None = None

    def started(self, variant: str, round_number: int, now: float) -> None:
        self._started = (variant, round_number, now)
        self._accuracy_from = None

    def phase(self, phase: str | None, now: float) -> None:
        if phase in ("accuracy", "fidelity") and self._accuracy_from is None:
            self._accuracy_from = now

    def finished(self, variant: str, round_number: int, now: float) -> None:
        if (variant, round_number) in self.pending:
            self.pending.remove((variant, round_number))
        if self._started and self._started[:2] == (variant, round_number) and round_number == 1:
            began = self._started[2]
            self.first_round[variant] = now - began
            self.timing[variant] = (self._accuracy_from or now) - began
        self._started = None

    def rounds_decided(self, rounds: int) -> None:
        """The automatic choice of rounds was made after round 1: what is beyond it will not run."""
        self.pending = [(name, r) for name, r in self.pending if r <= rounds]

    def remaining(self, now: float) -> float | None:
        """Seconds still to go, the measurement in progress included; None until one has finished."""
        if not self.first_round:
            return None
        first_mean = statistics.fmean(self.first_round.values())
        timing_mean = statistics.fmean(self.timing.values())
        total = 0.0
        for name, round_number in self.pending:
            guess = first_mean if round_number == 1 else self.timing.get(name, timing_mean)
            if self._started and self._started[:2] == (name, round_number):
                guess = max(guess - (now - self._started[2]), 0.0)
            total += guess
        return total


def describe(seconds: float | None) -> str:
    """'about 25 s left', 'about 3 min left'; '' with no estimate yet."""
    if seconds is None:
        return ""
    if seconds < 90:
        return f"about {max(round(seconds), 1)} s left"
    return f"about {round(seconds / 60)} min left"
