"""What the CLI prints on stdout: a table as rich, markdown or JSON; a farm summary as its two tables."""

from __future__ import annotations

import json
import sys

from rich.console import Console


def plain_console(**options) -> Console:
    """A console that prints text as given: model, device and run names are user text, and rich would read
    "[...]" in them as markup and ":name:" as an emoji code (a baseline "last:-1:" printed a thumbs-down)."""
    return Console(markup=False, emoji=False, highlight=False, **options)


def emit(output_format: str, table, document: dict, width: int | None = None) -> None:
    """`width`: the console's, for a table asked for whole (--wide) that may be wider than the terminal."""
    if output_format == "json":
        print(json.dumps(document, indent=2, default=str))
    elif output_format == "markdown":
        from edgebench.report.markdown import markdown_lines

        print("\n".join(markdown_lines(table)))
    else:
        from edgebench.report.terminal import rich_table

        # Piped into a file or a CI log, rich would squeeze the table to 80 columns.
        plain_console(width=width or (None if sys.stdout.isatty() else 260)).print(rich_table(table))


def emit_farm(output_format: str, summary) -> None:
    from edgebench.report.farm_table import device_states, farm_matrix

    if output_format == "json":
        print(json.dumps(summary.document(), indent=2, default=str))
        return
    emit(output_format, farm_matrix(summary), {})
    if output_format == "markdown":
        print()
    emit(output_format, device_states(summary), {})
