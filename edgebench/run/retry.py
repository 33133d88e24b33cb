"""Retries where they are safe: reaching a device and pushing files to it, never a measurement.

A measurement that started and failed is recorded as failed; running it again silently
would hide a flaky board and could measure twice under one name. Connecting and pushing
are idempotent (pushes are content-addressed and renamed into place only when complete),
so a dropped link or a board still booting gets a few more tries, with exponential
backoff and jitter so twenty boards behind one switch do not retry in lockstep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from edgebench.transport.base import ConnectionLost, Unreachable

T = TypeVar("T")

# Worth another try: the device did not answer, or the link broke mid-transfer. Not: a refused
# host key, a failed login, a missing Python, a full disk — trying again changes nothing.
TRANSIENT = (Unreachable, ConnectionLost)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 1  # 1: no retries (a single `edgebench run` fails fast and says why)
    initial_s: float = 1.0
    max_s: float = 30.0


def retrying(policy: RetryPolicy, action: Callable[[], T]) -> T:
    """`action()`, tried up to `policy.attempts` times while it fails with a transient error; the last
    error is raised as it was (one line, its own type)."""
    if policy.attempts <= 1:
        return action()
    retryer = Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential_jitter(initial=policy.initial_s, max=policy.max_s),
        retry=retry_if_exception_type(TRANSIENT),
        reraise=True,
    )
    return retryer(action)
