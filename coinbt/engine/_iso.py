"""Vectorized ISO-8601 timestamps to epoch milliseconds (UTC).

Accepted: ``YYYY-MM-DD``, then optionally ``T`` (or ``t`` or a space) ``HH:MM`` with optional
``:SS`` and a fraction ``.f`` (1-9 digits, truncated to milliseconds), then optionally ``Z`` or an
offset ``+HH:MM``, ``+HHMM`` or ``+HH`` (or ``-``). A timestamp without a zone is read as UTC.
Each field is checked (month 1-12, the day exists in that month, hour <= 23, minute and second
<= 59).

The common case, every row laid out like the first, reads each field from fixed columns; any other
mix of layouts goes through a slower general path with per-row positions.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ("days_from_civil", "parse_iso")

_WIDTH = 40
_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
_MS_DAY, _MS_HOUR, _MS_MIN = 86_400_000, 3_600_000, 60_000

I64Array = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
U8Array = NDArray[np.uint8]


def days_from_civil(year: I64Array, month: I64Array, day: I64Array) -> I64Array:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    result: I64Array = era * 146_097 + doe - 719_468
    return result


def parse_iso(buf: U8Array, starts: I64Array, ends: I64Array) -> tuple[I64Array, BoolArray]:
    """Parse the fields ``buf[starts[i]:ends[i]]``; returns epoch ms and a mask of bad fields."""
    lengths = ends - starts
    if len(starts) and bool((lengths == lengths[0]).all()):
        uniform = _parse_uniform(buf, starts, int(lengths[0]))
        if uniform is not None:
            return uniform, np.zeros(len(starts), dtype=np.bool_)
    return _parse_general(buf, starts, lengths)


class _Fields:
    """Date, time and zone fields of many timestamps (int64 arrays)."""

    def __init__(self, n: int) -> None:
        zero = np.zeros(n, dtype=np.int64)
        self.year = self.month = self.day = zero
        self.hour = self.minute = self.second = self.frac_ms = zero
        self.tz_sign = np.ones(n, dtype=np.int64)
        self.tz_hours = self.tz_minutes = zero

    def to_ms(self) -> tuple[I64Array, BoolArray]:
        """Epoch milliseconds, and whether every field is in range."""
        month, year = self.month, self.year
        leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
        last_day = _DAYS_IN_MONTH[np.clip(month - 1, 0, 11)] + ((month == 2) & leap)
        ok = (month >= 1) & (month <= 12) & (self.day >= 1) & (self.day <= last_day)
        ok &= (self.hour <= 23) & (self.minute <= 59) & (self.second <= 59)
        ok &= (self.tz_hours <= 23) & (self.tz_minutes <= 59)
        offset_min = self.tz_sign * (self.tz_hours * 60 + self.tz_minutes)
        ms: I64Array = (
            days_from_civil(year, month, self.day) * _MS_DAY
            + self.hour * _MS_HOUR
            + (self.minute - offset_min) * _MS_MIN
            + self.second * 1000
            + self.frac_ms
        )
        return ms, ok


def _shape(text: bytes) -> tuple[bool, bool, int, int, bytes] | None:
    """(has time, has seconds, fraction digits, zone start, zone text) of one timestamp."""
    has_time = len(text) > 10
    has_sec = len(text) >= 19 and text[16:17] == b":"
    pos = 19 if has_sec else 16 if has_time else 10
    frac = 0
    if text[pos : pos + 1] == b".":
        while frac < 9 and text[pos + 1 + frac : pos + 2 + frac].isdigit():
            frac += 1
        if frac == 0:
            return None
        pos += 1 + frac
    zone = text[pos:]
    if zone not in (b"", b"Z", b"z") and len(zone) not in (3, 5, 6):
        return None
    return has_time, has_sec, frac, pos, zone


def _parse_uniform(buf: U8Array, starts: I64Array, size: int) -> I64Array | None:
    """Every timestamp laid out like the first: fields at fixed columns (None if a row differs)."""
    if not 10 <= size <= _WIDTH:
        return None
    first = int(starts[0])
    shape = _shape(bytes(buf[first : first + size]))
    if shape is None:
        return None
    has_time, has_sec, frac, tz, zone = shape
    chars = buf[starts[None, :] + np.arange(size)[:, None]]
    d = chars - np.uint8(48)

    def digits(*cols: int) -> BoolArray:
        ok: BoolArray = (d[list(cols)] < 10).all(axis=0)
        return ok

    def number(col: int, width: int) -> I64Array:
        result: I64Array = d[col].astype(np.int64)
        for k in range(col + 1, col + width):
            result = result * 10 + d[k]
        return result

    def char_in(col: int, options: bytes) -> BoolArray:
        ok: BoolArray = chars[col] == options[0]
        for option in options[1:]:
            ok |= chars[col] == option
        return ok

    f = _Fields(len(starts))
    ok = digits(0, 1, 2, 3, 5, 6, 8, 9) & char_in(4, b"-") & char_in(7, b"-")
    f.year, f.month, f.day = number(0, 4), number(5, 2), number(8, 2)
    if has_time:
        ok &= char_in(10, b"Tt ") & digits(11, 12, 14, 15) & char_in(13, b":")
        f.hour, f.minute = number(11, 2), number(14, 2)
    if has_sec:
        ok &= digits(17, 18)
        f.second = number(17, 2)
    if frac:
        point = tz - 1 - frac
        ok &= char_in(point, b".") & digits(*range(point + 1, tz))
        f.frac_ms = number(point + 1, min(frac, 3)) * 10 ** (3 - min(frac, 3))
    if zone in (b"Z", b"z"):
        ok &= char_in(tz, b"Zz")
    elif zone:
        ok &= char_in(tz, b"+-") & digits(tz + 1, tz + 2)
        f.tz_hours = number(tz + 1, 2)
        if len(zone) == 6:
            ok &= char_in(tz + 3, b":") & digits(tz + 4, tz + 5)
            f.tz_minutes = number(tz + 4, 2)
        elif len(zone) == 5:
            ok &= digits(tz + 3, tz + 4)
            f.tz_minutes = number(tz + 3, 2)
        f.tz_sign = np.where(chars[tz] == 45, -1, 1)
    ms, in_range = f.to_ms()
    if not (ok & in_range).all():
        return None
    return ms


def _parse_general(buf: U8Array, starts: I64Array, lengths: I64Array) -> tuple[I64Array, BoolArray]:
    """Any mix of the accepted layouts (vectorized with per-row positions)."""
    n = len(starts)
    cols = np.arange(_WIDTH)[:, None]
    chars = buf[np.minimum(starts[None, :] + cols, len(buf) - 1)]
    chars[cols >= lengths[None, :]] = 0
    d = chars.astype(np.int64) - 48
    is_digit = (d >= 0) & (d <= 9)
    rows = np.arange(n)

    def at(k: I64Array) -> tuple[I64Array, I64Array, BoolArray]:
        k = np.minimum(k, _WIDTH - 1)
        return chars[k, rows].astype(np.int64), d[k, rows], is_digit[k, rows]

    def two(k: int) -> I64Array:
        value: I64Array = d[k] * 10 + d[k + 1]
        return value

    f = _Fields(n)
    ok = (lengths >= 10) & (lengths <= _WIDTH)
    ok &= is_digit[[0, 1, 2, 3, 5, 6, 8, 9]].all(axis=0) & (chars[4] == 45) & (chars[7] == 45)
    f.year = d[0] * 1000 + d[1] * 100 + two(2)
    f.month, f.day = two(5), two(8)
    has_time = lengths > 10
    time_ok = (chars[10] == 84) | (chars[10] == 116) | (chars[10] == 32)  # T, t, space
    time_ok &= is_digit[[11, 12, 14, 15]].all(axis=0) & (chars[13] == 58)
    has_sec = has_time & (chars[16] == 58)
    ok &= ~has_time | time_ok
    ok &= ~has_sec | (is_digit[17] & is_digit[18])
    f.hour = np.where(has_time, two(11), 0)
    f.minute = np.where(has_time, two(14), 0)
    f.second = np.where(has_sec, two(17), 0)
    pos = np.where(has_time, np.where(has_sec, 19, 16), 10)

    # fraction of a second: "." and 1-9 digits, truncated to milliseconds
    has_frac = at(pos)[0] == 46
    going = has_frac.copy()
    frac_digits = np.zeros(n, dtype=np.int64)
    frac_ms = np.zeros(n, dtype=np.int64)
    for j in range(1, 10):
        _, dj, isd = at(pos + j)
        going &= isd & (pos + j < lengths)
        frac_digits += going
        if j <= 3:
            frac_ms = np.where(going, frac_ms * 10 + dj, frac_ms)
    f.frac_ms = frac_ms * 10 ** (3 - np.minimum(frac_digits, 3))
    ok &= ~has_frac | (frac_digits >= 1)

    # zone: nothing (UTC), Z, +HH, +HHMM or +HH:MM
    tz = pos + np.where(has_frac, 1 + frac_digits, 0)
    rest = lengths - tz
    c0 = at(tz)[0]
    signed = (c0 == 43) | (c0 == 45)
    _, h1, h1d = at(tz + 1)
    _, h2, h2d = at(tz + 2)
    c3, d3, d3d = at(tz + 3)
    _, d4, d4d = at(tz + 4)
    _, d5, d5d = at(tz + 5)
    hours_ok = signed & h1d & h2d
    form6 = (rest == 6) & hours_ok & (c3 == 58) & d4d & d5d
    form5 = (rest == 5) & hours_ok & d3d & d4d
    form3 = (rest == 3) & hours_ok
    zulu = (rest == 1) & ((c0 == 90) | (c0 == 122))
    ok &= (rest == 0) | zulu | form6 | form5 | form3
    f.tz_hours = np.where(form6 | form5 | form3, h1 * 10 + h2, 0)
    f.tz_minutes = np.where(form6, d4 * 10 + d5, np.where(form5, d3 * 10 + d4, 0))
    f.tz_sign = np.where(c0 == 45, -1, 1)
    ms, in_range = f.to_ms()
    return ms, ~(ok & in_range)
