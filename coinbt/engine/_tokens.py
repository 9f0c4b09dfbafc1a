"""Vectorized CSV tokenizing and decimal parsing (the fast path of the CSV loader).

A chunk of a CSV body (whole lines, ending with a newline) is split into fields by locating every
comma and newline with numpy. A numeric column is parsed by right-aligning its fields in a small
byte matrix and running Horner's rule across the character positions: the digits give an exact
integer mantissa ``m`` (< 2**53) and the digits after the point give ``k``, so ``m / 10**k`` is the
correctly rounded value (Clinger's fast path, the same number ``float()`` returns). Fields outside
that grammar (exponents, spaces, ``nan``, too many digits) are flagged for the caller's slow path.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from coinbt.errors import DataError

__all__ = ("CHUNK_BYTES", "chunk_bounds", "parse_floats", "split_fields")

CHUNK_BYTES = 1 << 20
"""Bytes per chunk: large enough to amortize numpy calls, small enough to stay in cache."""

_MAX_WIDTH = 24
_EXACT = float(2**53)
_POW10 = 10.0 ** np.arange(_MAX_WIDTH)  # 10**k is exact in float64 for k <= 22
_TENTHS = np.concatenate((_POW10[_MAX_WIDTH - 2 :: -1], [0.0]))  # 10**(width-2-k); last unused
_COMMA, _NEWLINE, _PLUS, _MINUS = 44, 10, 43, 45
_DOT = np.uint8((46 - 48) % 256)  # "." after subtracting "0"

U8Array = NDArray[np.uint8]
I64Array = NDArray[np.int64]


def chunk_bounds(
    data: bytes, begin: int, end: int, size: int = CHUNK_BYTES
) -> list[tuple[int, int]]:
    """Ranges of about ``size`` bytes of ``data[begin:end]`` that each end just after a newline.

    ``data[end - 1]`` must be a newline.
    """
    bounds = []
    start = begin
    while start < end:
        cut = data.find(b"\n", min(start + size, end) - 1, end) + 1
        bounds.append((start, cut))
        start = cut
    return bounds


def split_fields(buf: U8Array, ncol: int, first_row: int) -> tuple[I64Array, I64Array]:
    """The start and end offsets (rows x ``ncol``) of every field of the lines in ``buf``.

    ``buf`` holds whole lines, the last ending with a newline. Raises :class:`DataError` naming the
    file row (``first_row`` is the row of ``buf``'s first line) of a line without ``ncol`` fields.
    """
    sep = buf == _COMMA
    sep |= buf == _NEWLINE
    pos = np.flatnonzero(sep)
    is_newline = buf[pos] == _NEWLINE
    rows = len(pos) // ncol
    if len(pos) == rows * ncol and bool(is_newline.reshape(rows, ncol)[:, -1].all()):
        ends = pos.reshape(rows, ncol)
    else:
        line_of = np.cumsum(is_newline) - is_newline
        counts = np.bincount(line_of)
        bad = int(np.flatnonzero(counts != ncol)[0])
        found = int(counts[bad])
        hint = (
            " (an empty line)" if found == 1 and _line_is_empty(buf, pos, is_newline, bad) else ""
        )
        raise DataError(
            f"expected {ncol} comma-separated fields, found {found}{hint}", row=first_row + bad
        )
    starts = np.empty_like(ends)
    starts[:, 1:] = ends[:, :-1] + 1
    starts[0, 0] = 0
    starts[1:, 0] = ends[:-1, -1] + 1
    return starts, ends


def _line_is_empty(buf: U8Array, pos: I64Array, is_newline: NDArray[np.bool_], line: int) -> bool:
    newlines = pos[is_newline]
    start = 0 if line == 0 else int(newlines[line - 1]) + 1
    return int(newlines[line]) == start


def parse_floats(
    buf: U8Array, starts: I64Array, ends: I64Array
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Parse the decimal fields ``buf[starts[i]:ends[i]]``.

    Returns the values and a mask of the fields the fast path could not parse exactly (their value
    is meaningless): the grammar is an optional sign, digits with at most one point, and at least
    one digit, with an integer mantissa below 2**53.
    """
    n = len(starts)
    lengths = ends - starts
    width = min(int(lengths.max()) if n else 0, _MAX_WIDTH)
    if width == 0:
        return np.zeros(n), np.ones(n, dtype=np.bool_)
    # right-aligned: field i ends in the last row of column i. Positions left of a field hold
    # the bytes before it (or, for the first field, wrap to the end of buf): masked by `valid`.
    digits = buf[np.arange(-width, 0)[:, None] + ends[None, :]]
    digits -= np.uint8(48)  # characters -> digit values; anything else becomes >= 10
    position = np.arange(width)[:, None]
    valid = position >= (width - lengths)[None, :]
    is_digit = digits < 10
    is_digit &= valid
    is_dot = digits == _DOT
    is_dot &= valid
    n_digits = np.count_nonzero(is_digit, axis=0)
    n_dots = np.count_nonzero(is_dot, axis=0)
    n_other = np.minimum(lengths, width) - n_digits - n_dots
    # Each digit weighted by 10**(the number of digits right of it): 10**(width-1-k) right of
    # the point, 10**(width-2-k) left of it (the point takes a column). Every term and partial sum
    # is an integer, exact in float64 while the total is below 2**53, in any summation order.
    values = np.where(is_digit, digits, np.uint8(0)).astype(np.float64)
    has_dot = n_dots > 0
    if has_dot.any():
        dot_at = np.where(has_dot, is_dot.argmax(axis=0), 0)  # 0: no digit is left of a point
        frac_digits = np.where(has_dot, width - 1 - dot_at, 0)
        left = values * (position < dot_at[None, :])
        values -= left
        mantissa = _POW10[width - 1 :: -1] @ values
        mantissa += _TENTHS[_MAX_WIDTH - width :] @ left
    else:  # integers only (epoch timestamps): no point to step over
        frac_digits = np.zeros(n, dtype=np.int64)
        mantissa = _POW10[width - 1 :: -1] @ values
    first = buf[np.minimum(starts, len(buf) - 1)]
    signed = (first == _PLUS) | (first == _MINUS)
    ok = (
        (n_digits >= 1)
        & (n_dots <= 1)
        & (n_other == signed)
        & (mantissa < _EXACT)
        & (frac_digits <= 22)
        & (lengths <= width)
    )
    values = mantissa / _POW10[np.minimum(frac_digits, 22)]
    np.negative(values, out=values, where=first == _MINUS)
    return values, ~ok
