"""A device record -> the open transport that reaches it: its Endpoint and its own options section."""

from __future__ import annotations

from edgebench.backends.base import Backend
from edgebench.core.errors import EdgebenchError
from edgebench.devices.inventory import Device
from edgebench.transport.base import Endpoint, Transport


def endpoint(device: Device) -> Endpoint:
    return Endpoint(device.name, device.python, device.workdir)


def open_transport(device: Device, *, trust_new_host: bool = False) -> Transport:
    if device.transport == "local":
        from edgebench.transport.local import LocalTransport

        return LocalTransport(endpoint(device))
    if device.transport == "ssh":
        from edgebench.transport.ssh import SshTransport

        return SshTransport(endpoint(device), device.options, trust_new_host=trust_new_host)
    if device.transport == "adb":
        from edgebench.transport.adb import AdbTransport

        return AdbTransport(endpoint(device), device.options)
    raise EdgebenchError(f"device {device.name!r}: transport {device.transport!r} is not supported by this edgebench")


def make_backend(device: Device, transport: Transport) -> Backend:
    """What measures on this device: the Python agent, or the native benchmark_model binary."""
    if device.backend == "benchmark_model":
        from edgebench.backends.benchmark_model import BenchmarkModelBackend

        return BenchmarkModelBackend(transport, device.name, device.benchmark_model)
    from edgebench.backends.python_agent import PythonAgent

    return PythonAgent(transport)
