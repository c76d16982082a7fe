"""Plain-text tables for the terminal."""

from __future__ import annotations


def print_table(rows: list[tuple[str, ...]]) -> None:
    """Print `rows` (the first is the header) in aligned columns; the last column is not padded."""
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
