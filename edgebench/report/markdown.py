"""DataTable -> GitHub-flavoured markdown lines, for CI job summaries and the README."""

from __future__ import annotations

from edgebench.report.table import DataTable


def markdown_lines(table: DataTable) -> list[str]:
    def cells(values) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    lines = [f"**{table.title}**", ""]
    lines += [f"{line}  " for line in table.header] + ([""] if table.header else [])
    lines.append(cells(c.header for c in table.columns))
    lines.append("|" + "|".join("---:" if c.align == "right" else "---" for c in table.columns) + "|")
    lines += [cells(row) for row in table.rows]
    lines += [""] + [f"- {note}" for note in table.notes] if table.notes else []
    return lines
