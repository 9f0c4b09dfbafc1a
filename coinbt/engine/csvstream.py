"""Parsing CSV as bytes arrive: complete lines are parsed in chunks, the first bad row refused
as soon as its chunk is complete, and memory stays at about one chunk however long the file.

Each chunk goes through :func:`coinbt.engine.parse_csv` (the header, when the file has one, is put
in front of every chunk), so the rules and messages are the same as for a whole file; row numbers
are the file's. Across chunks the timestamps must keep increasing.
"""

from __future__ import annotations

from coinbt.engine._csv import parse_csv
from coinbt.engine.data import Bars
from coinbt.errors import DataError

__all__ = ("CsvChunks",)

DEFAULT_CHUNK_BYTES = 1 << 20
MAX_LINE_BYTES = 16 << 20


class CsvChunks:
    """Feed bytes with :meth:`feed`, then call :meth:`finish`; each returns the bars parsed from
    the lines completed so far (or None). Raises :class:`DataError` naming the file row."""

    def __init__(self, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        self._chunk_bytes = chunk_bytes
        self._pending = bytearray()
        self._header: bytes | None = None
        self._layout_known = False
        self._rows_before = 0  # data rows parsed so far (plus the header line, if any)
        self._last_ts: int | None = None
        self.bytes_seen = 0

    @property
    def rows(self) -> int:
        """Data rows parsed so far."""
        return self._rows_before - (1 if self._header is not None else 0)

    def feed(self, data: bytes) -> Bars | None:
        self.bytes_seen += len(data)
        self._pending += data
        if len(self._pending) < self._chunk_bytes:
            return None
        cut = self._pending.rfind(b"\n")
        if cut < 0:
            if len(self._pending) > MAX_LINE_BYTES:
                raise DataError(
                    f"a line longer than {MAX_LINE_BYTES:,} bytes: is this a CSV file with one "
                    "row per line?",
                    row=self._rows_before + 1,
                )
            return None
        piece = bytes(self._pending[: cut + 1])
        del self._pending[: cut + 1]
        return self._parse(piece)

    def finish(self) -> Bars | None:
        piece = bytes(self._pending)
        self._pending.clear()
        bars = self._parse(piece) if piece.strip() else None
        if self._rows_before == 0:
            raise DataError("the file is empty")
        if self.rows == 0:
            raise DataError("no data rows: the file has only a header")
        return bars

    def _parse(self, piece: bytes) -> Bars | None:
        if not self._layout_known:
            piece = self._take_header(piece)
            if not piece.strip():
                return None
        if not piece.strip():
            return None
        text = piece if self._header is None else self._header + piece
        offset = self._rows_before - (1 if self._header is not None else 0)
        try:
            bars = parse_csv(text)
        except DataError as e:
            raise _moved(e, offset) from None
        first_row = offset + (2 if self._header is not None else 1)
        if self._last_ts is not None and int(bars.ts[0]) <= self._last_ts:
            what = "repeats" if int(bars.ts[0]) == self._last_ts else "is earlier than"
            raise DataError(
                f"timestamp {int(bars.ts[0])} {what} the previous bar's ({self._last_ts}); "
                "timestamps must be strictly increasing",
                row=first_row,
                column="timestamp",
            )
        self._last_ts = int(bars.ts[-1])
        self._rows_before += len(bars)
        return bars

    def _take_header(self, piece: bytes) -> bytes:
        """Decide from the first line whether the file has a header; keep it for every chunk."""
        if piece.startswith(b"\xef\xbb\xbf"):
            piece = piece[3:]
        stripped = piece.lstrip(b" \t\r\n")
        if not stripped:
            return b""
        newline = stripped.find(b"\n")
        first = stripped if newline < 0 else stripped[:newline]
        self._layout_known = True
        field = first.split(b",", 1)[0].strip(b' \t\r"[')
        try:
            float(field)
        except ValueError:
            if field[:1].isdigit() or field[:1] == b"-":  # an ISO timestamp: no header
                return stripped
            self._header = first.rstrip(b"\r") + b"\n"
            self._rows_before = 1
            return b"" if newline < 0 else stripped[newline + 1 :]
        return stripped


def _moved(error: DataError, offset: int) -> DataError:
    """``error`` from a chunk, with the row number counted from the start of the file."""
    if error.row is None:
        return error
    text = str(error)
    prefix = f"row {error.row}" + (f", column {error.column!r}" if error.column else "") + ": "
    message = text[len(prefix) :] if text.startswith(prefix) else text
    return DataError(message, row=error.row + offset, column=error.column)
