"""Device chores around a run: check what a device can run, trust its host key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgebench.core.errors import EdgebenchError
from edgebench.devices.connect import endpoint, make_backend, open_transport
from edgebench.devices.inventory import Device, resolve_device
from edgebench.transport import DeviceError


@dataclass(frozen=True)
class CheckReport:
    device: Device
    probe: dict | None
    problem: str | None

    @property
    def runnable(self) -> bool:
        return self.probe is not None and self.problem is None


def check_device(spec: str, devices_dir: Path | None = None, *, trust_new_host: bool = False) -> CheckReport:
    device = resolve_device(spec, devices_dir)
    try:
        with open_transport(device, trust_new_host=trust_new_host) as transport:
            backend = make_backend(device, transport)
            probe = backend.probe(workdir=transport.workdir())
    except DeviceError as error:
        return CheckReport(device, None, str(error))
    try:
        backend.require_runnable(probe, device.name)
    except DeviceError as error:
        return CheckReport(device, probe, str(error))
    return CheckReport(device, probe, None)


def trust_device(spec: str, devices_dir: Path | None = None) -> str:
    """Connect once accepting an unknown host key, which gets recorded; a changed key is still refused."""
    from edgebench.transport.ssh import SshTransport

    device = resolve_device(spec, devices_dir)
    if device.transport != "ssh":
        raise EdgebenchError(f"device {device.name!r} uses transport {device.transport!r}: it has no host key")
    with SshTransport(endpoint(device), device.options, trust_new_host=True) as transport:
        transport.connect()
        where, address = transport.known_hosts, f"{transport.target.hostname}:{transport.target.port}"
        if transport.trusted_now:
            return f"recorded {transport.trusted_now} for {address} in {where}"
        return f"{address} is already trusted (in {where} or the user's known_hosts)"
