"""``Table``: rows of plain values, sorted and filtered with plain Python, shown as text or HTML.

A dependency-free stand-in for a data frame: the analysis tables are small (a few hundred rows).
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

__all__ = ["Table"]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) if all(isinstance(v, int) for v in value) else json.dumps(value)
    return "" if value is None else str(value)


class Table:
    """Rows (dicts) with an ordered set of columns.

    Args:
        rows: the rows; missing columns show as empty cells.
        columns: column order (default: first appearance in ``rows``).
    """

    def __init__(self, rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> None:
        self.rows: list[dict[str, Any]] = [dict(r) for r in rows]
        if columns is None:
            columns = list(dict.fromkeys(k for r in self.rows for k in r))
        self.columns = list(columns)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rows[index]

    def column(self, name: str) -> list[Any]:
        """The values of one column."""
        if name not in self.columns:
            raise KeyError(f"column: expected one of {self.columns}, got {name!r}")
        return [r.get(name) for r in self.rows]

    def sort(self, by: str | Callable[[dict[str, Any]], Any], *, reverse: bool = False) -> Table:
        """A new table sorted by a column name or a key function."""
        if isinstance(by, str) and by not in self.columns:
            raise KeyError(f"by: expected one of {self.columns}, got {by!r}")
        key: Callable[[dict[str, Any]], Any] = by if callable(by) else (lambda r: r.get(by))
        rows = sorted(self.rows, key=key, reverse=reverse)
        return Table(rows, self.columns)

    def filter(self, predicate: Callable[[dict[str, Any]], bool]) -> Table:
        """A new table with the rows where ``predicate(row)`` is true."""
        return Table([r for r in self.rows if predicate(r)], self.columns)

    def head(self, n: int = 10) -> Table:
        return Table(self.rows[:n], self.columns)

    def select(self, columns: Sequence[str]) -> Table:
        """A new table with only (and in the order of) ``columns``."""
        unknown = [c for c in columns if c not in self.columns]
        if unknown:
            raise KeyError(f"columns: expected names among {self.columns}, got {unknown[0]!r}")
        return Table(self.rows, columns)

    def __str__(self) -> str:
        cells = [self.columns] + [[_cell(r.get(c)) for c in self.columns] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    __repr__ = __str__  # the table itself, in consoles and as notebooks' text/plain

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in self.columns) + "</tr>" for r in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def to_csv(self, path: str | PathLike[str] | None = None) -> str:
        """CSV text (lists as space-separated values); written to ``path`` when given."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows([_cell(r.get(c)) if isinstance(r.get(c), (list, tuple)) else r.get(c) for c in self.columns] for r in self.rows)
        text = buffer.getvalue()
        if path is not None:
            Path(path).write_text(text)
        return text
