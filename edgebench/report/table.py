"""A table as plain data, built by pure functions and rendered at the edge."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    header: str
    align: str = "right"  # "left" or "right"


@dataclass(frozen=True)
class DataTable:
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = field(default=())  # under the table: failures, warnings
    header: tuple[str, ...] = field(default=())  # over the table: what was measured where
    dense: bool = False  # drawn without column rules, to fit a narrow terminal
