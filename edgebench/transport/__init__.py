"""How the host reaches a device: one contract, one module per kind (local, ssh, adb).

A transport takes an Endpoint (name, python, workdir) and its own options section, never the whole
device record: devices/connect.py opens the right one for a device.
"""

from edgebench.transport.base import CommandResult, ConnectionLost, DeviceError, Endpoint, Transport

__all__ = ["CommandResult", "ConnectionLost", "DeviceError", "Endpoint", "Transport"]
