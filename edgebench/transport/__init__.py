"""How the host reaches a device: one contract, one module per kind (local, ssh, adb)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgebench.core.errors import EdgebenchError
from edgebench.transport.base import CommandResult, ConnectionLost, DeviceError, Transport

if TYPE_CHECKING:  # the inventory reads transport options from this package: no import back at run time
    from edgebench.devices.inventory import Device


def open_transport(device: Device, *, trust_new_host: bool = False) -> Transport:
    if device.transport == "local":
        from edgebench.transport.local import LocalTransport

        return LocalTransport(device)
    if device.transport == "ssh":
        from edgebench.transport.ssh import SshTransport

        return SshTransport(device, trust_new_host=trust_new_host)
    if device.transport == "adb":
        from edgebench.transport.adb import AdbTransport

        return AdbTransport(device)
    raise EdgebenchError(f"device {device.name!r}: transport {device.transport!r} is not supported by this edgebench")


__all__ = ["CommandResult", "ConnectionLost", "DeviceError", "Transport", "open_transport"]
