"""The broker: one Redis server that every lab host and the controller reach, and what lives in it.

Redis carries two things (docs/labs.md says why these and not a home-made protocol):
- the job queues, through dramatiq's Redis broker: one queue per device (`device.<name>`), so
  only the lab worker that owns a device ever takes its jobs, and a job for a device nobody
  owns stays queued where `farm status` can see it;
- edgebench's own records, all under the `edgebench:` prefix: the submitted farm runs, each
  job's state and attempts, the run documents the workers ship back, the device leases
  (TTL, renewed by the worker's heartbeat) and the workers' announcements.

The broker URL may carry a password (`redis://:PASSWORD@host:6379/0`) and use TLS
(`rediss://`, with $EDGEBENCH_BROKER_CA naming the CA file); it is never printed with its
password. The default comes from $EDGEBENCH_BROKER.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from edgebench.core.errors import EdgebenchError

T = TypeVar("T")

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
NAMESPACE = "edgebench"
ACTOR = "edgebench_measure"  # the only actor a worker knows: nothing else is ever run from the queue
# How long a broker that went away (a Redis restart) is waited for before a step gives up.
BROKER_PATIENCE_S = 600.0


class BrokerError(EdgebenchError):
    """The broker cannot be reached, refused the password, or holds something edgebench cannot read."""


def broker_url(url: str | None) -> str:
    return url or os.environ.get("EDGEBENCH_BROKER") or DEFAULT_BROKER


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    user = parts.username or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def queue_name(device: str) -> str:
    return f"device.{device}"


def device_of_queue(queue: str) -> str:
    return queue.removeprefix("device.")


def key(*parts: str) -> str:
    return ":".join((NAMESPACE, *parts))


def connect(url: str | None = None, *, check: bool = True) -> redis.Redis:
    """A client for the broker, checked with a PING: a wrong password or an unreachable host is one line."""
    url = broker_url(url)
    if not re.match(r"^rediss?://", url):
        raise BrokerError(f"broker URL {redacted(url)!r} is not redis:// or rediss://")
    options = {"socket_connect_timeout": 5, "socket_timeout": 30, "health_check_interval": 15}
    if os.environ.get("EDGEBENCH_BROKER_CA"):
        options["ssl_ca_certs"] = os.environ["EDGEBENCH_BROKER_CA"]
    if os.environ.get("EDGEBENCH_BROKER_PASSWORD") and urlsplit(url).password is None:
        options["password"] = os.environ["EDGEBENCH_BROKER_PASSWORD"]
    try:
        client = redis.Redis.from_url(url, **options)
        if check:
            client.ping()
    except (redis.AuthenticationError, redis.ResponseError) as error:
        text = str(error)
        if "required" in text.lower() or "NOAUTH" in text:
            raise BrokerError(f"broker {redacted(url)} needs a password: put it in the URL or "
                              "$EDGEBENCH_BROKER_PASSWORD") from None  # fmt: skip
        if isinstance(error, redis.AuthenticationError) or "WRONGPASS" in text:
            raise BrokerError(f"broker {redacted(url)} refused the password ({text})") from None
        raise BrokerError(f"broker {redacted(url)}: {text}") from None
    except (redis.ConnectionError, redis.TimeoutError, ValueError) as error:
        raise BrokerError(f"cannot reach the broker at {redacted(url)}: {error}") from None
    return client


def dramatiq_broker(client: redis.Redis, heartbeat_timeout_s: float):
    """dramatiq's Redis broker on our client, with none of its default middleware: its TimeLimit would kill an
    hour-long measurement at 10 minutes, and its Retries would re-run a failed measurement silently. Our
    job records decide retries, with labels. Maintenance (giving a dead worker's unacknowledged jobs back to
    their queue) runs on one fetch in ten, so a worker that comes back finds its job within seconds."""
    from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker

    return RedisBroker(
        client=client,
        namespace=f"{NAMESPACE}-queues",
        middleware=[],
        heartbeat_timeout=int(heartbeat_timeout_s * 1000),
        maintenance_chance=MAINTENANCE_SCALE // 10,
    )


def enqueue(broker, payload: dict) -> None:
    """One job message onto its device's queue: plain JSON, for the one actor workers run."""
    from dramatiq import Message

    queue = queue_name(payload["device"])
    broker.declare_queue(queue)
    broker.enqueue(Message(queue_name=queue, actor_name=ACTOR, args=(payload,), kwargs={}, options={}))


@dataclass(frozen=True)
class Patience:
    """How long a broker operation keeps retrying while Redis is away (restarting, a network split)."""

    seconds: float = BROKER_PATIENCE_S

    def call(self, action: Callable[[], T], what: str) -> T:
        retryer = Retrying(
            stop=stop_after_delay(self.seconds),
            wait=wait_exponential_jitter(initial=0.2, max=5.0),
            retry=retry_if_exception_type((redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)),
            reraise=True,
        )
        try:
            return retryer(action)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise BrokerError(f"{what}: the broker was away for more than {self.seconds:g}s ({error})") from None


def now() -> float:
    return time.time()


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
