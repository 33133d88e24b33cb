"""DataTable -> rich renderables. The only module that knows about rich tables."""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from edgebench.report.table import DataTable


def rich_table(table: DataTable) -> Group:
    """The table, then its notes as full-width lines (a caption would wrap them to the table's width)."""
    # Text, not str: cells hold user text (model, device, run names) that rich would read as markup.
    rendered = Table(
        title=Text(table.title) if table.title else None, title_justify="left",
        box=box.SIMPLE_HEAD if table.dense else box.HEAVY_HEAD, pad_edge=not table.dense,
        show_edge=not table.dense, collapse_padding=table.dense,
    )  # fmt: skip
    names = max((len(row[0]) for row in table.rows), default=0)
    for index, column in enumerate(table.columns):
        # The first column names the row: it is never squeezed away on a narrow console.
        first = index == 0
        rendered.add_column(
            column.header, justify=column.align, no_wrap=column.align == "right" or first,
            min_width=names if first else None,
        )  # fmt: skip
    for row in table.rows:
        rendered.add_row(*(Text(cell) if isinstance(cell, str) else cell for cell in row))
    return Group(*(Text(line) for line in table.header), rendered, *(Text(note) for note in table.notes))
