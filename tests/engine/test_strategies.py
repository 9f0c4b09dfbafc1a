"""The strategy registry, parameter schemas, and spec validation errors naming their field."""

from __future__ import annotations

from typing import Any

import pytest

from coinbt.engine import STRATEGIES, BacktestSpec, run, synthetic, validate_spec
from coinbt.errors import SpecError

EXPECTED = {
    "sma_cross": {"fast": 10, "slow": 30},
    "ema_cross": {"fast": 12, "slow": 26},
    "rsi_reversion": {"period": 14, "lower": 30.0, "upper": 70.0},
    "bollinger_breakout": {"window": 20, "k": 2.0},
    "donchian_breakout": {"window": 20, "exit_window": 10},
    "buy_and_hold": {},
}


def fields(error: SpecError) -> list[str]:
    return [e.field for e in error.errors]


def test_the_registry_has_every_strategy_with_its_defaults() -> None:
    assert {name: s.defaults() for name, s in STRATEGIES.items()} == EXPECTED


@pytest.mark.parametrize("name", list(EXPECTED))
def test_schemas_are_json_schema_like(name: str) -> None:
    strategy = STRATEGIES[name]
    schema = strategy.schema()
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == []
    assert len(strategy.description) > 80
    properties = schema["properties"]
    assert isinstance(properties, dict)
    assert set(properties) == set(EXPECTED[name])
    for pname, prop in properties.items():
        assert prop["type"] in ("integer", "number")
        assert prop["default"] == EXPECTED[name][pname]
        assert "maximum" in prop
        assert "minimum" in prop or "exclusiveMinimum" in prop
        assert prop["description"]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_strategy_runs_with_its_defaults(name: str) -> None:
    result = run(BacktestSpec(name), synthetic(2_000, seed=2))
    assert result.params == EXPECTED[name]
    assert result.num_fills > 0


BAD_PARAMS = [
    pytest.param(
        "sma_cross", {"fast": 30, "slow": 30}, "params.fast", "less than slow", id="fast-eq-slow"
    ),
    pytest.param(
        "sma_cross",
        {"fast": 40},
        "params.fast",
        "less than slow \\(30\\), got 40",
        id="fast-gt-default-slow",
    ),
    pytest.param(
        "ema_cross", {"fast": 5, "slow": 3}, "params.fast", "less than slow", id="ema-fast-gt-slow"
    ),
    pytest.param(
        "sma_cross",
        {"fast": "10"},
        "params.fast",
        "must be an integer, got the string '10'",
        id="string",
    ),
    pytest.param(
        "sma_cross",
        {"fast": True},
        "params.fast",
        "must be an integer, got the boolean true",
        id="bool",
    ),
    pytest.param(
        "sma_cross",
        {"fast": 10.0},
        "params.fast",
        "must be an integer, got 10.0",
        id="float-for-int",
    ),
    pytest.param(
        "sma_cross",
        {"slow": 1},
        "params.slow",
        "must be in \\[2, 1000000\\], got 1",
        id="below-min",
    ),
    pytest.param("sma_cross", {"fast": 0}, "params.fast", "must be in \\[1, ", id="zero-window"),
    pytest.param(
        "sma_cross", {"period": 3}, "params.period", "unknown parameter for sma_cross", id="unknown"
    ),
    pytest.param(
        "rsi_reversion",
        {"lower": 70, "upper": 30},
        "params.lower",
        "less than upper",
        id="lower-ge-upper",
    ),
    pytest.param(
        "rsi_reversion",
        {"lower": 0},
        "params.lower",
        "must be in \\(0.0, 100.0\\], got 0.0",
        id="exclusive-min",
    ),
    pytest.param("rsi_reversion", {"upper": float("nan")}, "params.upper", "finite", id="nan"),
    pytest.param(
        "bollinger_breakout",
        {"k": False},
        "params.k",
        "must be a number, got the boolean false",
        id="bool-for-number",
    ),
    pytest.param("bollinger_breakout", {"k": 11}, "params.k", "got 11.0", id="k-too-big"),
    pytest.param("buy_and_hold", {"window": 3}, "params.window", "expected: none", id="no-params"),
]


@pytest.mark.parametrize(("name", "params", "field", "message"), BAD_PARAMS)
def test_bad_params_name_the_field(
    name: str, params: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(SpecError, match=message) as info:
        STRATEGIES[name].validate(params)
    assert fields(info.value) == [field]
    with pytest.raises(SpecError, match=f"^{field}: "):
        validate_spec(BacktestSpec(name, params))


BAD_SPECS = [
    pytest.param(
        {"strategy": "nope"},
        ["strategy"],
        "unknown strategy 'nope' \\(known: sma_cross",
        id="unknown-strategy",
    ),
    pytest.param({"cash": 0}, ["cash"], "must be positive", id="zero-cash"),
    pytest.param({"cash": "lots"}, ["cash"], "must be a number", id="string-cash"),
    pytest.param({"cash": float("inf")}, ["cash"], "finite", id="inf-cash"),
    pytest.param(
        {"fee_bps": -1.0}, ["fee_bps"], "must not be negative, got -1.0", id="negative-fee"
    ),
    pytest.param({"fee_bps": 10_000}, ["fee_bps"], "below 10000", id="fee-100-percent"),
    pytest.param(
        {"slippage_bps": -0.5}, ["slippage_bps"], "must not be negative", id="negative-slippage"
    ),
    pytest.param({"fill": "open"}, ["fill"], "next_open or close", id="bad-fill"),
    pytest.param({"params": [1, 2]}, ["params"], "must be an object", id="params-not-a-mapping"),
    pytest.param(
        {"params": {"fast": 50}, "cash": -1, "fee_bps": -1},
        ["params.fast", "cash", "fee_bps"],
        "params.fast: .*; cash: .*; fee_bps: ",
        id="every-error-at-once",
    ),
]


@pytest.mark.parametrize(("changes", "expected_fields", "message"), BAD_SPECS)
def test_bad_specs_name_every_field(
    changes: dict[str, Any], expected_fields: list[str], message: str
) -> None:
    spec = BacktestSpec(**{"strategy": "sma_cross", **changes})
    with pytest.raises(SpecError, match=message) as info:
        validate_spec(spec)
    assert fields(info.value) == expected_fields


@pytest.mark.parametrize(
    ("name", "params", "bars", "field"),
    [
        pytest.param("sma_cross", {"slow": 300}, 300, "params.slow", id="sma-slow"),
        pytest.param("ema_cross", {}, 26, "params.slow", id="ema-default"),
        pytest.param("rsi_reversion", {"period": 50}, 51, "params.period", id="rsi-period"),
        pytest.param("bollinger_breakout", {"window": 100}, 99, "params.window", id="bollinger"),
        pytest.param(
            "donchian_breakout", {"exit_window": 40}, 40, "params.exit_window", id="donchian-exit"
        ),
    ],
)
def test_a_window_longer_than_the_data_names_the_parameter(
    name: str, params: dict[str, Any], bars: int, field: str
) -> None:
    spec = BacktestSpec(name, params)
    with pytest.raises(
        SpecError, match=f"needs at least {bars + 1} bars; the data has {bars}"
    ) as info:
        run(spec, synthetic(bars))
    assert fields(info.value) == [field]
    run(spec, synthetic(bars + 1))  # one more bar is enough


def test_signals_api_validates_and_returns_boolean_arrays() -> None:
    bars = synthetic(500, seed=4)
    entries, exits = STRATEGIES["donchian_breakout"].signals(bars, {"window": 5})
    assert entries.dtype == bool
    assert exits.dtype == bool
    assert len(entries) == len(exits) == 500
    assert not entries[:5].any()  # the channel needs 5 previous bars
    with pytest.raises(SpecError):
        STRATEGIES["donchian_breakout"].signals(bars, {"window": -1})
    assert STRATEGIES["sma_cross"].min_bars({"slow": 50}) == 51
