"""Who is up, and which devices they own: each lab worker announces itself on the broker.

A worker's announcement (`edgebench:worker:<id>`) lives for one lease TTL and is renewed by
its heartbeat, so a worker that died disappears from it within that time. The devices it
owns are also remembered without expiry (`edgebench:devices`), with their tags, so a farm
file's `tag:TAG` still finds a device whose lab is down tonight, and `farm status` can say
whose it is. Nothing secret is announced: names, tags, transport kind, never addresses or keys.
"""

from __future__ import annotations

import json

import redis

from edgebench.devices.inventory import Device
from edgebench.labs.broker import key, now


def announce(client: redis.Redis, worker: str, lab: str, devices: list[Device], ttl_s: float, pid: int,
             host: str) -> None:  # fmt: skip
    at = now()
    names = [d.name for d in devices]
    with client.pipeline(transaction=True) as pipe:
        pipe.set(key("worker", worker), json.dumps({"lab": lab, "devices": names, "pid": pid, "host": host,
                                                    "seen_at": at}), px=int(ttl_s * 1000))  # fmt: skip
        for device in devices:
            pipe.hset(key("devices"), device.name, json.dumps({
                "lab": lab, "worker": worker, "tags": list(device.tags), "emulated": device.emulated,
                "transport": device.transport, "seen_at": at}))  # fmt: skip
        pipe.execute()


def withdraw(client: redis.Redis, worker: str) -> None:
    client.delete(key("worker", worker))


def live_workers(client: redis.Redis) -> dict[str, dict]:
    found = {}
    for name in client.scan_iter(match=key("worker", "*"), count=500):
        raw = client.get(name)
        if raw:
            found[name.decode().rsplit(":", 1)[1]] = json.loads(raw)
    return found


def announced_devices(client: redis.Redis) -> dict[str, dict]:
    """Every device a worker ever announced, with `live`: whether a running worker owns it now."""
    workers = live_workers(client)
    owners = {device: (worker, entry["lab"]) for worker, entry in workers.items() for device in entry["devices"]}
    devices = {}
    for name, raw in client.hgetall(key("devices")).items():
        entry = json.loads(raw)
        owner = owners.get(name.decode())
        devices[name.decode()] = {**entry, "live": owner is not None,
                                  **({"worker": owner[0], "lab": owner[1]} if owner else {})}  # fmt: skip
    return devices
