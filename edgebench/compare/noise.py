"""A noise floor learned from history: how far this board's quiet nights already move a variant's median.

One run's thousands of samples cannot show the variation between processes and between nights (memory
layout, frequency, the hypervisor); the earlier comparable runs of the same device, model, variant and
runtime can. Their run-level medians, as log ratios to their median, give a robust spread (1.4826 MAD, so
one earlier night that really regressed does not widen it); a candidate against one baseline night varies
by about sqrt(2) of that. A shift smaller than FLOOR_Z times it is what quiet nights do, and is never
called slower or faster. Pure functions: history/lookup.py gathers the nights.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MIN_NIGHTS = 5  # fewer earlier nights than this give no floor, and the verdict says so
WINDOW = 10  # the newest comparable nights the floor rests on
FLOOR_Z = 2.33  # one-sided 1%: at most about 1 quiet night in 100 past the floor, if the spread is right


@dataclass(frozen=True)
class NoiseFloor:
    nights: int  # earlier comparable runs it rests on
    spread: float | None  # robust relative spread of their medians (None: too few nights)
    floor: float | None  # the smallest relative shift that is not noise (None: too few nights)

    def describe(self) -> str:
        if self.floor is None:
            return f"no noise floor yet: {self.nights} earlier comparable night(s), {MIN_NIGHTS} needed"
        return f"noise floor {self.floor:.1%} from {self.nights} earlier nights"


def noise_floor(medians: Sequence[float]) -> NoiseFloor:
    """The floor from earlier nights' run-level medians of one variant (oldest first; the newest WINDOW count)."""
    recent = [m for m in medians if m > 0][-WINDOW:]
    if len(recent) < MIN_NIGHTS:
        return NoiseFloor(len(recent), None, None)
    logs = [math.log(m) for m in recent]
    centre = statistics.median(logs)
    spread = 1.4826 * statistics.median(abs(x - centre) for x in logs)
    return NoiseFloor(len(recent), spread, math.expm1(FLOOR_Z * math.sqrt(2) * spread))
