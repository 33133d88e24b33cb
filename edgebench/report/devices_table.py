"""The inventory -> the table `edgebench devices list` prints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgebench.inventory import Device
from edgebench.report.table import Column, DataTable


def devices_table(devices: Sequence[Device], folder: Path) -> DataTable:
    columns = (
        Column("name", "left"),
        Column("transport", "left"),
        Column("address", "left"),
        Column("threads"),
        Column("tags", "left"),
        Column("description", "left"),
    )
    rows = []
    for device in devices:
        address = "—"
        if device.transport == "ssh":
            address = f"{device.user + '@' if device.user else ''}{device.host}:{device.port}"
        tags = ", ".join(device.tags) + (" (emulated)" if device.emulated else "")
        rows.append((device.name, device.transport, address, str(device.threads), tags, device.description))
    notes = () if devices else (f"no device files in {folder}",)
    return DataTable(f"Devices in {folder}", columns, tuple(rows), notes)
