"""Is a device fit to measure on, and is it cool enough to measure again? Pure checks of probe data.

A board that is too hot, throttling, out of disk or missing its runtime measures
nonsense or fails half-way; a farm checks first and quarantines it instead
(LAVA's health checks). Mobile benchmark suites also let a device cool down
between measurements, so the last variant is not measured on a board the first
ones heated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgebench.core.errors import Cancelled
from edgebench.transport.base import HealthCheckFailed

# Room beyond the largest variant and the data files: the agent and the runtime's scratch files.
DISK_MARGIN_BYTES = 1024 * 1024


@dataclass(frozen=True)
class HealthLimits:
    max_temperature_c: float | None = None  # from the device file; None: no ceiling
    # A farm refuses a device without room for its largest variant; a single `run` measures what
    # fits and fails the rest by name, so there the free space is only recorded.
    require_free_disk: bool = False


@dataclass(frozen=True)
class Cooldown:
    seconds: float = 0.0  # a fixed pause before every measurement but the first
    below_c: float | None = None  # or: wait until the device is this cool
    max_wait_s: float = 300.0  # ... but no longer than this
    poll_s: float = 5.0

    @property
    def active(self) -> bool:
        return self.seconds > 0 or self.below_c is not None

    def describe(self) -> str:
        parts = [f"pause {self.seconds:g}s"] if self.seconds > 0 else []
        if self.below_c is not None:
            parts.append(f"wait until below {self.below_c:g} °C (at most {self.max_wait_s:g}s)")
        return "cooling down: " + ", ".join(parts)


def check_health(probe: dict, limits: HealthLimits, needed_bytes: int, device_name: str) -> dict:
    """The probe against the limits: a record of what was checked, or HealthCheckFailed naming the first problem."""
    problems = []
    temperature = probe.get("temperature_c")
    if limits.max_temperature_c is not None and temperature is not None and temperature > limits.max_temperature_c:
        problems.append(f"temperature {temperature:.1f} °C is above its ceiling {limits.max_temperature_c:g} °C")
    throttled = probe.get("throttled") or {}
    now = [event for event in throttled.get("events", []) if not event.endswith("since boot")]
    if now:
        problems.append(f"throttled now ({', '.join(now)})")
    free = probe.get("free_bytes")
    needed = needed_bytes + DISK_MARGIN_BYTES
    if limits.require_free_disk and free is not None and free < needed:
        problems.append(f"{free:,} bytes free in its workdir, {needed:,} needed (largest variant, data files, margin)")
    record = {
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "temperature_c": temperature,
        "max_temperature_c": limits.max_temperature_c,
        "free_bytes": free,
        "needed_bytes": needed,
        "throttled": throttled or None,
        "problems": problems,
    }
    if problems:
        raise HealthCheckFailed(f"device {device_name!r} failed its health check: {'; '.join(problems)}")
    return record


def cool_down(policy: Cooldown, temperature: Callable[[], float | None], cancel: threading.Event) -> dict:
    """Wait as the policy says; return what happened (recorded with the measurement that follows)."""
    started = time.monotonic()
    if policy.seconds > 0 and cancel.wait(policy.seconds):
        raise Cancelled("cancelled while cooling down")
    reading = None
    if policy.below_c is not None:
        reading = temperature()
        while reading is not None and reading > policy.below_c and time.monotonic() - started < policy.max_wait_s:
            if cancel.wait(policy.poll_s):
                raise Cancelled("cancelled while cooling down")
            reading = temperature()
    waited = round(time.monotonic() - started, 1)
    cooled = policy.below_c is None or reading is None or reading <= policy.below_c
    return {"waited_s": waited, "temperature_c": reading, "reached": cooled}
