"""How the host reaches a device: one contract, one module per kind (local, ssh)."""

from __future__ import annotations

from edgebench.errors import EdgebenchError
from edgebench.inventory import Device
from edgebench.transport.base import CommandResult, Transport


def open_transport(device: Device) -> Transport:
    if device.transport == "local":
        from edgebench.transport.local import LocalTransport

        return LocalTransport(device)
    raise EdgebenchError(f"device {device.name!r}: transport {device.transport!r} is not supported by this edgebench")


__all__ = ["CommandResult", "Transport", "open_transport"]
