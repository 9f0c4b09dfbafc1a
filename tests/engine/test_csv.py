"""CSV loading: both layouts, every timestamp form, the fast number parser, and bad input."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coinbt.engine import load_csv, parse_csv, synthetic
from coinbt.engine._tokens import chunk_bounds, parse_floats, split_fields
from coinbt.errors import DataError

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
HEADER = "timestamp,open,high,low,close,volume\n"
ROWS = [
    (T0, 100.0, 101.5, 99.5, 101.0, 12.5),
    (T0 + 60_000, 101.0, 102.0, 100.25, 100.5, 0.0),
    (T0 + 120_000, 100.5, 100.75, 99.0, 99.25, 7.0),
]


def csv_text(stamp: object = None, header: str = HEADER) -> str:
    lines = []
    for ts, o, h, lo, c, v in ROWS:
        shown = ts if stamp is None else stamp(ts)  # type: ignore[operator]
        lines.append(f"{shown},{o},{h},{lo},{c},{v}")
    return header + "\n".join(lines) + "\n"


def assert_rows(bars: object) -> None:
    expected = np.array(ROWS)
    for i, name in enumerate(("ts", "open", "high", "low", "close", "volume")):
        assert getattr(bars, name).tolist() == expected[:, i].tolist(), name


def iso(fmt: str, tz: timezone = UTC) -> object:
    return lambda ts: datetime.fromtimestamp(ts / 1000, UTC).astimezone(tz).strftime(fmt)


TIMESTAMP_FORMS = [
    pytest.param(None, id="epoch-ms"),
    pytest.param(lambda ts: ts // 1000, id="epoch-s"),
    pytest.param(lambda ts: f"{ts / 1000:.3f}", id="epoch-s-fraction"),
    pytest.param(lambda ts: ts * 1000, id="epoch-us"),
    pytest.param(lambda ts: ts * 1_000_000, id="epoch-ns"),
    pytest.param(iso("%Y-%m-%dT%H:%M:%SZ"), id="iso-z"),
    pytest.param(iso("%Y-%m-%dT%H:%M:%S"), id="iso-naive-utc"),
    pytest.param(iso("%Y-%m-%d %H:%M:%S"), id="iso-space"),
    pytest.param(iso("%Y-%m-%dT%H:%M"), id="iso-minutes"),
    pytest.param(iso("%Y-%m-%dT%H:%M:%S.%fZ"), id="iso-fraction"),
    pytest.param(
        iso("%Y-%m-%dT%H:%M:%S+05:30", timezone(timedelta(hours=5, minutes=30))), id="iso-offset"
    ),
    pytest.param(
        iso("%Y-%m-%dT%H:%M:%S-0300", timezone(timedelta(hours=-3))), id="iso-offset-compact"
    ),
]


@pytest.mark.parametrize("stamp", TIMESTAMP_FORMS)
def test_timestamp_forms(stamp: object) -> None:
    assert_rows(parse_csv(csv_text(stamp).encode()))


def test_mixed_iso_layouts_in_one_file() -> None:
    text = HEADER + (
        "2024-01-01T00:00:00Z,100,101.5,99.5,101,12.5\n"
        "2024-01-01T01:01:00.000+01:00,101,102,100.25,100.5,0\n"
        "2024-01-01 00:02:00,100.5,100.75,99,99.25,7\n"
    )
    assert_rows(parse_csv(text))


def test_date_only_timestamps() -> None:
    text = HEADER + "2024-02-28,1,1,1,1,1\n2024-02-29,1,1,1,1,1\n2024-03-01,1,1,1,1,1\n"
    bars = parse_csv(text)
    assert bars.ts.tolist() == [1_709_078_400_000, 1_709_164_800_000, 1_709_251_200_000]
    assert bars.interval_ms == 86_400_000


def test_header_columns_by_name_extra_columns_ignored() -> None:
    text = "Close, volume ,symbol,open_time,HIGH,low,open\n" + "".join(
        f"{c},{v},BTC,{ts},{h},{lo},{o}\n" for ts, o, h, lo, c, v in ROWS
    )
    assert_rows(parse_csv(text))


def binance_rows(scale: int) -> str:
    return "".join(
        f"{ts * scale},{o:.8f},{h:.8f},{lo:.8f},{c:.8f},{v:.8f},{(ts + 59_999) * scale},"
        f"1234.5,42,1.5,150.0,0\n"
        for ts, o, h, lo, c, v in ROWS
    )


@pytest.mark.parametrize("scale", [pytest.param(1, id="ms"), pytest.param(1000, id="us")])
def test_binance_klines(scale: int) -> None:
    assert_rows(parse_csv(binance_rows(scale).encode()))


def test_headerless_six_columns() -> None:
    assert_rows(parse_csv(csv_text(header="")))


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(lambda t: t.replace("\n", "\r\n"), id="crlf"),
        pytest.param(lambda t: "\ufeff" + t, id="bom"),
        pytest.param(lambda t: t.rstrip("\n"), id="no-final-newline"),
        pytest.param(lambda t: t + "\n\n  \n", id="trailing-blank-lines"),
        pytest.param(lambda t: t.replace("101.5", '"101.5"'), id="quotes"),
        pytest.param(lambda t: t.replace("12.5", "1.25e1").replace(",7.0", ", 7 "), id="slow-path"),
    ],
)
def test_tolerated_variations(transform: object) -> None:
    assert_rows(parse_csv(transform(csv_text()).encode("utf-8")))  # type: ignore[operator]


def test_load_csv_from_a_path_and_a_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(csv_text())
    assert_rows(load_csv(path))
    assert_rows(load_csv(str(path)))
    assert_rows(load_csv(io.BytesIO(csv_text().encode())))


def test_a_large_file_parses_exactly_across_chunks(tmp_path: Path) -> None:
    bars = synthetic(30_000, seed=9)
    lines = [HEADER.strip()]
    stamps = np.datetime_as_string(bars.ts.astype("datetime64[ms]"), unit="s")
    for t, o, h, lo, c, v in zip(
        stamps.tolist(),
        bars.open.tolist(),
        bars.high.tolist(),
        bars.low.tolist(),
        bars.close.tolist(),
        bars.volume.tolist(),
        strict=True,
    ):
        lines.append(f"{t}Z,{o!r},{h!r},{lo!r},{c!r},{v!r}")  # 17-digit reprs hit the slow path
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n")
    assert len(chunk_bounds(path.read_bytes(), 0, path.stat().st_size)) > 1
    back = load_csv(path)
    for name, arr in bars.to_arrays().items():
        assert np.array_equal(getattr(back, name), arr), name


NUMBER_TEXT = st.one_of(
    st.from_regex(r"\A[-+]?[0-9]{1,20}(\.[0-9]{0,20})?\Z"),
    st.from_regex(r"\A[-+]?\.[0-9]{1,20}\Z"),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(0, 1e9).map(lambda x: f"{x:.8f}"),
    st.floats(0, 1e6).map(lambda x: f"{x:g}"),
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(texts=st.lists(NUMBER_TEXT, min_size=1, max_size=30))
def test_fast_number_parser_agrees_with_float(texts: list[str]) -> None:
    body = ("\n".join(texts) + "\n").encode()
    buf = np.frombuffer(body, dtype=np.uint8)
    starts, ends = split_fields(buf, 1, 1)
    values, slow = parse_floats(buf, starts[:, 0], ends[:, 0])
    for text, value, needs_slow in zip(texts, values.tolist(), slow.tolist(), strict=True):
        if not needs_slow:
            assert value == float(text), text
            assert np.signbit(value) == np.signbit(float(text)), text
    # and the loader as a whole (fast and slow paths) reads every one exactly
    rows = "".join(
        f"{i},{abs(float(t)) + 1},{abs(float(t)) + 1},{abs(float(t)) + 1},"
        f"{abs(float(t)) + 1},{t.lstrip('+-')}\n"
        for i, t in enumerate(texts, start=1)
    )
    bars = parse_csv(HEADER + rows)
    assert bars.volume.tolist() == [float(t.lstrip("+-")) for t in texts]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    moment=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2199, 12, 30), timezones=st.just(UTC)
    ),
    offset=st.integers(-14 * 60, 14 * 60),
    layout=st.sampled_from(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%f"]),
)
def test_iso_timestamps_agree_with_datetime(moment: datetime, offset: int, layout: str) -> None:
    zone = timezone(timedelta(minutes=offset))
    local = moment.astimezone(zone)
    sign = "+" if offset >= 0 else "-"
    text = local.strftime(layout) + f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    expected = (
        int(moment.timestamp() * 1000)
        if not moment.microsecond
        else (int(moment.replace(microsecond=0).timestamp()) * 1000 + moment.microsecond // 1000)
    )
    if "%f" not in layout:
        expected -= moment.microsecond // 1000
    bars = parse_csv(f"{HEADER}{text},1,1,1,1,1\n")
    assert bars.ts.tolist() == [expected]


BAD_FILES = [
    pytest.param("", "the file is empty", None, id="empty"),
    pytest.param("\n \n", "the file is empty", None, id="blank"),
    pytest.param(HEADER, "no data rows", None, id="header-only"),
    pytest.param(
        "timestamp,open,high,low,close\n1,1,1,1,1\n",
        "missing column 'volume'",
        1,
        id="missing-column",
    ),
    pytest.param(
        "when,open,high,low,close,volume\n1,1,1,1,1,1\n",
        "missing column 'timestamp'",
        1,
        id="missing-timestamp",
    ),
    pytest.param("a,b,c\n1,2,3\n", "no header", 1, id="no-header"),
    pytest.param("1,2,3,4\n", "4 columns is not a Binance kline row", 1, id="headerless-4"),
    pytest.param(
        "timestamp,open,open,high,low,close,volume\n",
        "'open' appears twice",
        1,
        id="duplicate-column",
    ),
    pytest.param(
        HEADER + "1704067200000,1,1,1,1,1\n1704067260000,1,1,1,1\n",
        "expected 6 comma-separated fields, found 5",
        3,
        id="short-row",
    ),
    pytest.param(
        HEADER + "1704067200000,1,1,1,1,1\n\n1704067260000,1,1,1,1,1\n",
        "found 1 \\(an empty line\\)",
        3,
        id="empty-line",
    ),
    pytest.param(
        HEADER + "1704067200000,1,1,1,1,1\n1704067260000,1,x1,1,1,1\n",
        "column 'high': cannot parse 'x1' as a number",
        3,
        id="bad-number",
    ),
    pytest.param(
        HEADER + "1704067200000,1,1,,1,1\n", "column 'low': empty value", 2, id="empty-value"
    ),
    pytest.param(
        HEADER + "2024-01-01T00:00:00Z,1,1,1,1,1\n2024-13-01T00:00:00Z,1,1,1,1,1\n",
        "column 'timestamp': cannot parse '2024-13-01T00:00:00Z' as a timestamp",
        3,
        id="bad-month",
    ),
    pytest.param(
        HEADER + "2024-02-30,1,1,1,1,1\n", "cannot parse '2024-02-30'", 2, id="no-such-day"
    ),
    pytest.param(HEADER + "2024-01-01T00:00:00Q,1,1,1,1,1\n", "as a timestamp", 2, id="bad-zone"),
    pytest.param(
        HEADER + "1704067200000,1,1,1,1,1\n1704067260,1,1,1,1,1\n",
        "epoch seconds but the first row's is in milliseconds",
        3,
        id="mixed-units",
    ),
    pytest.param(
        HEADER + "1704067200000,1,1,1,nan,1\n", "column 'close': close is nan", 2, id="nan"
    ),
    pytest.param(HEADER + "1704067200000,1,inf,1,1,1\n", "column 'high': high is inf", 2, id="inf"),
    pytest.param(
        HEADER + "1704067200000,1,1,1,1,1\n1704067260000,0,1,0,1,1\n",
        "column 'open': open price 0.0 is not positive",
        3,
        id="zero-price",
    ),
    pytest.param(
        HEADER + "1704067200000,1,1,1,-1,1\n",
        "column 'close': close price -1.0 is not positive",
        2,
        id="negative-price",
    ),
    pytest.param(
        HEADER + "1704067200000,1,1,2,1,1\n",
        "column 'high': high 1.0 is below low 2.0",
        2,
        id="high-below-low",
    ),
    pytest.param(
        HEADER + "1704067200000,3,2,1,1.5,1\n",
        "column 'open': open 3.0 is outside \\[low 1.0, high 2.0\\]",
        2,
        id="open-outside",
    ),
    pytest.param(
        HEADER + "1704067200000,1.5,2,1,0.5,1\n",
        "column 'close': close 0.5 is outside",
        2,
        id="close-outside",
    ),
    pytest.param(
        HEADER + "1704067200000,1,1,1,1,-3\n",
        "column 'volume': volume -3.0 is negative",
        2,
        id="negative-volume",
    ),
    pytest.param(
        HEADER + "1704067200000,1,1,1,1,1\n1704067260000,1,1,1,1,1\n1704067260000,1,1,1,1,1\n",
        "column 'timestamp': timestamp 1704067260000 repeats",
        4,
        id="duplicate-ts",
    ),
    pytest.param(
        HEADER + "1704067260000,1,1,1,1,1\n1704067200000,1,1,1,1,1\n",
        "timestamp 1704067200000 is earlier than",
        3,
        id="unsorted-ts",
    ),
]


@pytest.mark.parametrize(("text", "message", "row"), BAD_FILES)
def test_bad_files_name_the_row(text: str, message: str, row: int | None) -> None:
    with pytest.raises(DataError, match=message) as info:
        parse_csv(text.encode())
    assert info.value.row == row
    if row is not None:
        assert str(info.value).startswith(f"row {row}")


def test_the_first_bad_row_wins_across_rules() -> None:
    text = HEADER + "1704067200000,1,1,1,1,1\n1704067260000,1,1,1,1,-1\n1704067320000,1,1,1,nan,1\n"
    with pytest.raises(DataError, match="row 3, column 'volume'"):
        parse_csv(text)


def test_a_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cannot read .*nope\.csv: No such file"):
        load_csv(tmp_path / "nope.csv")


@pytest.mark.parametrize(
    "name",
    ["timestamp", "Timestamp", "open_time", "Open time", "date", "Date", "TIME", "datetime", "ts"],
)
def test_time_column_aliases(name: str) -> None:
    header = f"{name},Open,High,Low,Close,Volume\n"
    assert_rows(parse_csv(csv_text(header=header)))
    iso_rows = csv_text(lambda t: datetime.fromtimestamp(t / 1000, UTC).isoformat(), header=header)
    assert_rows(parse_csv(iso_rows))


def test_ccxt_list_of_lists() -> None:
    as_json = "[" + ", ".join(f"[{', '.join(map(str, row))}]" for row in ROWS) + "]"
    assert_rows(parse_csv(as_json))
    pretty = "[\n" + ",\n".join(f"  [{', '.join(map(str, row))}]" for row in ROWS) + "\n]\n"
    assert_rows(parse_csv(pretty))
    per_line = "".join(f"{list(row)}\n" for row in ROWS)
    assert_rows(parse_csv(per_line))


@pytest.mark.parametrize(
    ("stamp", "row"),
    [
        pytest.param("-99999999999999", 2, id="year-minus-1199"),
        pytest.param("7258118400000", 2, id="year-2200"),
        pytest.param("1899-12-31T23:59:59Z", 2, id="iso-1899"),
    ],
)
def test_timestamps_outside_the_supported_range(stamp: str, row: int) -> None:
    with pytest.raises(DataError, match="outside the supported range") as caught:
        parse_csv(f"{HEADER}{stamp},1,2,0.5,1.5,10\n")
    assert caught.value.row == row
    assert caught.value.column == "timestamp"
