"""The inventory -> the table `edgebench devices list` prints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgebench.inventory import Device
from edgebench.report.table import Column, DataTable


def devices_table(devices: Sequence[Device], folder: Path, states: dict | None = None) -> DataTable:
    """The inventory, with each device's quarantine (from the results folder) when it has one."""
    states = states or {}
    columns = (
        Column("name", "left"),
        Column("transport", "left"),
        Column("address", "left"),
        Column("threads"),
        Column("tags", "left"),
        Column("description", "left"),
        Column("service", "left"),
    )
    rows = []
    for device in devices:
        address = device.address or "—"
        tags = ", ".join(device.tags) + (" (emulated)" if device.emulated else "")
        held = (states.get(device.name) or {}).get("quarantine")
        service = f"QUARANTINED since {held['since']}" if held else "ok"
        rows.append((device.name, device.transport, address, str(device.threads), tags, device.description, service))
    notes = [] if devices else [f"no device files in {folder}"]
    for device in devices:
        held = (states.get(device.name) or {}).get("quarantine")
        if held:
            how = ("a passing health check in a farm run releases it" if held["kind"] == "health-check"
                   else f"'edgebench devices release {device.name}' releases it")  # fmt: skip
            notes.append(f"{device.name} quarantined ({held['kind']}): {held['reason']}; {how}")
    return DataTable(f"Devices in {folder}", columns, tuple(rows), tuple(notes))


def check_table(report) -> DataTable:
    """`edgebench devices check`: one row per fact, then the problem if there is one."""
    device, probe = report.device, report.probe or {}
    runtime = probe.get("runtime")
    free = probe.get("free_bytes")
    facts = [
        ("device", f"{device.name} ({device.transport}{', ' + device.address if device.address else ''})"),
        ("reachable", "yes" if report.probe is not None else "no"),
        ("python", probe.get("python", "—")),
        ("machine", probe.get("machine", "—")),
        ("numpy", probe.get("numpy") or "missing" if probe else "—"),
        ("TFLite runtime", f"{runtime['name']} {runtime['version']}" if runtime else ("missing" if probe else "—")),
        ("psutil", probe.get("psutil") or ("not installed (/proc is used)" if probe else "—")),
        ("CPU", f"{probe['cpu_model']}, {probe['cores']} cores" if probe else "—"),
        ("free disk in workdir", f"{free / 1e9:.1f} GB" if free is not None else "—"),
        ("temperature", f"{probe['temperature_c']:.1f} °C" if probe.get("temperature_c") is not None else "—"),
        ("can run the agent", "yes" if report.runnable else "NO"),
    ]
    notes = (f"problem: {report.problem}",) if report.problem else ()
    return DataTable(
        f"Device check: {device.name}", (Column("check", "left"), Column("result", "left")), tuple(facts), notes
    )
