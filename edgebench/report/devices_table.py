"""The inventory -> the table `edgebench devices list` prints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgebench.core.settings import format_value, matrix_runs, resolve
from edgebench.devices.inventory import Device
from edgebench.report.table import Column, DataTable


def devices_table(devices: Sequence[Device], folder: Path, states: dict | None = None) -> DataTable:
    """The inventory, with each device's quarantine (from the results folder) when it has one."""
    states = states or {}
    columns = (
        Column("name", "left"),
        Column("transport", "left"),
        Column("address", "left"),
        Column("threads"),
        Column("accelerator", "left"),
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
        threads = str(resolve(device.settings, *matrix_runs(device.settings)[:1]).threads)
        # LiteRT's CompiledModel on these accelerators (a list: one run each), or the interpreter.
        accelerator = format_value(device.settings.get("accelerator") or "interpreter")
        rows.append((device.name, device.transport, address, threads, accelerator, tags, device.description, service))
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
    if device.backend == "benchmark_model":
        return _phone_check_table(report)
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


def _phone_check_table(report) -> DataTable:
    """A phone measured by benchmark_model: what getprop, sysfs and dumpsys said, and the binary's state."""
    device, probe = report.device, report.probe or {}
    android = probe.get("android", {})
    free = probe.get("free_bytes")
    max_khz = probe.get("cpu_max_khz") or {}
    zones = probe.get("thermal_zones") or {}
    hottest = max(zones.items(), key=lambda item: item[1]) if zones else None
    facts = [
        ("device", f"{device.name} ({device.transport}, {device.address})"),
        ("reachable", "yes" if report.probe is not None else "no"),
        ("phone", probe.get("description", "—")),
        ("Android", f"Android {android['release']} (SDK {android.get('sdk', '?')})" if android.get("release") else "—"),
        ("SoC", " ".join(v for v in (android.get("soc_manufacturer"), android.get("soc")) if v) or "—"),
        ("ABI", android.get("abi", "—")),
        ("CPU max MHz", ", ".join(f"cpu{c} {k // 1000}" for c, k in sorted(max_khz.items(), key=lambda i: int(i[0])))
         or "—"),
        ("big cores", ",".join(map(str, probe.get("big_cores") or [])) or "—"),
        ("thermal zones", f"{len(zones)}, hottest {hottest[0]} {hottest[1]:.1f} °C" if hottest else "none readable"),
        ("battery", f"{probe['battery_c']:.1f} °C" if probe.get("battery_c") is not None else "—"),
        ("free disk in workdir", f"{free / 1e9:.2f} GB" if free is not None else "—"),
        ("benchmark_model", f"{probe.get('binary_path', '—')} ({probe.get('binary', '—')})"),
        ("result proto", "yes (--result_file_path)" if probe.get("binary_writes_proto") else "no (text output)"),
        ("can run benchmark_model", "yes" if report.runnable else "NO"),
    ]  # fmt: skip
    notes = (f"problem: {report.problem}",) if report.problem else ()
    return DataTable(
        f"Device check: {device.name}", (Column("check", "left"), Column("result", "left")), tuple(facts), notes
    )
