"""Strict CSV reading and writing shared by the readers of :mod:`selfinterp.io`.

Every error names the file and the 1-based line, the header being line 1,
before any analysis starts.
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["Table", "read_table", "write_table", "format_number"]

# a number as the released files write it: ASCII digits, optional sign, point and exponent
# (Python's float() would also take "1_000", full-width digits and surrounding spaces)
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z", re.ASCII)


class Table:
    """The rows of a CSV file, columns looked up by name.

    Attributes
    ----------
    path : Path
    header : list of str
    rows : list of list of str
    lines : ndarray of int (R,)
        1-based line number of each row in the file (the header is line 1).
    """

    def __init__(self, path: Path, header: list[str], rows: list[list[str]], lines: np.ndarray):
        self.path = path
        self.header = header
        self.rows = rows
        self.lines = lines
        self._index = {name: i for i, name in enumerate(header)}

    def __len__(self) -> int:
        return len(self.rows)

    def where(self, row: int) -> str:
        """``'FILE, line N'`` for row index ``row``."""
        return f"{self.path}, line {int(self.lines[row])}"

    def strings(self, name: str) -> list[str]:
        """Column ``name`` as a list of strings."""
        i = self._index[name]
        return [r[i] for r in self.rows]

    def numbers(self, names: list[str]) -> np.ndarray:
        """Columns ``names`` as a finite float array (R, len(names)).

        Raises InputError naming the file, line and column of the first value
        that is not a finite number written in ASCII digits (``1_000``,
        full-width digits and padded values are refused, not read).
        """
        idx = [self._index[n] for n in names]
        # column by column: a few long lists, not one small list per row (which the
        # garbage collector would keep rescanning)
        try:
            out = np.empty((len(self.rows), len(idx)))
            plain = True
            for j, i in enumerate(idx):
                col = [r[i] for r in self.rows]
                joined = "".join(col)
                plain &= joined.isascii() and "_" not in joined and " " not in joined
                out[:, j] = np.array(col, dtype=np.float64)
        except ValueError:
            out = None
        if out is not None and plain and np.isfinite(out).all():
            return out
        # slow path only to name the first bad cell
        for r, row in enumerate(self.rows):
            for name, i in zip(names, idx):
                value = float(row[i]) if _NUMBER.match(row[i]) else None
                if value is None or not np.isfinite(value):
                    raise InputError(f"{self.where(r)}: column {name!r}: {row[i]!r} is not a "
                                     "finite number (ASCII digits, e.g. -12.5 or 1e3)")
        raise AssertionError("unreachable: a conversion failed but no cell is bad")  # pragma: no cover

    def check_range(self, names: list[str], values: np.ndarray, lo, hi, what: str) -> None:
        """Raise InputError naming file, line and column of the first of ``values`` (R, len(names))
        outside [lo, hi] (scalars or arrays broadcasting against ``values``)."""
        bad = (values < lo) | (values > hi)
        if bad.any():
            r, j = (int(i) for i in np.argwhere(bad)[0])
            lo_, hi_ = (float(np.broadcast_to(x, values.shape)[r, j]) for x in (lo, hi))
            raise InputError(f"{self.where(r)}: column {names[j]!r}: {float(values[r, j])!r} is outside {what} "
                             f"[{format_number(lo_)}, {format_number(hi_)}]")


def _open_text(path: Path) -> str:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}, line {line}: not valid UTF-8 text") from exc


def read_table(path, columns) -> Table:
    """Read a CSV file whose header must hold exactly ``columns`` (any order).

    ``columns`` is a list of names, or a function of the header returning
    one (for layouts whose width the header decides).

    Raises InputError for a missing or unreadable file, an empty file, a
    header with missing, unknown or repeated columns, a row with the wrong
    number of fields, and blank lines (a blank line is a row with no fields).
    """
    path = Path(os.fspath(path))
    text = _open_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise InputError(f"{path}: file is empty (expected a header line)")
        seen = set()
        for name in header:
            if name in seen:
                raise InputError(f"{path}, line 1: column {name!r} appears twice in the header")
            seen.add(name)
        if callable(columns):
            columns = columns(header)
        missing = [c for c in columns if c not in seen]
        allowed = set(columns)
        unknown = [c for c in header if c not in allowed]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing column(s) {missing}")
            if unknown:
                parts.append(f"unknown column(s) {unknown}")
            raise InputError(f"{path}, line 1: header has {' and '.join(parts)}; expected "
                             f"{columns}")
        rows, lines = [], []
        width = len(header)
        start = reader.line_num + 1
        for row in reader:
            if len(row) != width:
                raise InputError(f"{path}, line {start}: {len(row)} field(s), expected {width} "
                                 "(as in the header)")
            rows.append(row)
            lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(f"{path}, line {reader.line_num}: malformed CSV ({exc})") from exc
    return Table(path, header, rows, np.asarray(lines, dtype=np.int64))


def format_number(x: float) -> str:
    """Shortest text that reads back as ``x``; integers without a decimal point."""
    x = float(x)
    if x.is_integer() and abs(x) < 2**53:
        # keep the sign of -0 (the released files contain "-0")
        return "-0" if x == 0 and np.signbit(x) else str(int(x))
    return repr(x)


def write_table(path, header: list[str], rows) -> None:
    """Write a CSV file (minimal quoting, ``\\n`` line ends), as the released files are."""
    path = Path(os.fspath(path))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
