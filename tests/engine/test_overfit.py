"""The deflated Sharpe ratio (Bailey & López de Prado 2014) on data whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coinbt import engine
from coinbt.engine.metrics import periods_per_year
from coinbt.engine.overfit import (
    deflated_sharpe,
    equity_returns,
    expected_max_sharpe,
    probabilistic_sharpe,
    return_moments,
)


def test_expected_max_sharpe_matches_the_maximum_of_many_null_trials() -> None:
    """SR0 is E[max of N zero-mean normal Sharpe ratios]: check it against a simulation."""
    rng = np.random.default_rng(11)
    for trials in (10, 100, 1000):
        draws = rng.normal(0.0, 0.02, size=(4000, trials)).max(axis=1)
        assert expected_max_sharpe(trials, 0.02**2) == pytest.approx(draws.mean(), rel=0.03)
    assert expected_max_sharpe(1, 0.5) == 0.0
    assert expected_max_sharpe(50, 0.0) == 0.0
    assert expected_max_sharpe(10, 1.0) < expected_max_sharpe(100, 1.0)
    with pytest.raises(ValueError, match="at least 1"):
        expected_max_sharpe(0, 1.0)


def test_probabilistic_sharpe_basics() -> None:
    assert probabilistic_sharpe(0.05, 0.05, 1000, 0.0, 3.0) == pytest.approx(0.5)
    # Normal returns: z = SR * sqrt(T - 1) / sqrt(1 + SR^2 / 2)
    z = 0.05 * math.sqrt(999) / math.sqrt(1 + 0.05**2 / 2)
    expected = 0.5 * (1 + math.erf(z / math.sqrt(2)))
    assert probabilistic_sharpe(0.05, 0.0, 1000, 0.0, 3.0) == pytest.approx(expected)
    # Negative skew and fat tails make the same Sharpe less convincing.
    assert probabilistic_sharpe(0.05, 0.0, 1000, -1.0, 9.0) < expected
    assert math.isnan(probabilistic_sharpe(0.05, 0.0, 1, 0.0, 3.0))


def test_return_moments() -> None:
    rng = np.random.default_rng(3)
    returns = rng.normal(0.001, 0.01, 200_000)
    sharpe, skew, kurtosis = return_moments(returns)
    assert sharpe == pytest.approx(returns.mean() / returns.std(ddof=1))
    assert skew == pytest.approx(0.0, abs=0.02)
    assert kurtosis == pytest.approx(3.0, abs=0.05)
    assert return_moments(np.zeros(10)) == (0.0, 0.0, 3.0)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_the_best_of_many_noise_trials_is_not_significant(seed: int) -> None:
    """200 strategies of pure noise: the best has a Sharpe a naive test calls significant,
    the deflated Sharpe does not."""
    rng = np.random.default_rng(seed)
    trials = rng.normal(0.0, 0.01, size=(200, 2000))
    sharpes = trials.mean(axis=1) / trials.std(axis=1, ddof=1)
    best = int(np.argmax(sharpes))
    naive = probabilistic_sharpe(float(sharpes[best]), 0.0, 2000, 0.0, 3.0)
    dsr = deflated_sharpe(trials[best], list(sharpes))
    assert naive > 0.99
    assert dsr.probability < 0.9
    assert dsr.trials == 200
    assert dsr.best_sharpe == pytest.approx(sharpes[best])
    assert dsr.sharpe_variance == pytest.approx(float(np.var(sharpes, ddof=1)))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_planted_edge_survives_the_deflation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    trials = rng.normal(0.0, 0.01, size=(200, 2000))
    trials[17] += 0.002  # a per-bar Sharpe of about 0.2: t = 9 over 2,000 bars
    sharpes = trials.mean(axis=1) / trials.std(axis=1, ddof=1)
    assert int(np.argmax(sharpes)) == 17
    assert deflated_sharpe(trials[17], list(sharpes)).probability > 0.99


def test_undefined_sharpes_count_as_zero_skill_trials() -> None:
    rng = np.random.default_rng(5)
    returns = rng.normal(0.0005, 0.01, 1000)
    with_none = deflated_sharpe(returns, [0.05, None, 0.01])
    with_zero = deflated_sharpe(returns, [0.05, 0.0, 0.01])
    assert with_none == with_zero
    with pytest.raises(ValueError, match="no trials"):
        deflated_sharpe(returns, [])


def trending_bars(bars: int = 20_000, seed: int = 7) -> engine.Bars:
    """Prices that trend up, then down, every 600 bars: a moving-average cross has a real edge."""
    rng = np.random.default_rng(seed)
    drift = 0.002 * np.sign(np.sin(np.arange(bars) * 2 * np.pi / 600))
    close = 100 * np.exp(np.cumsum(drift + rng.normal(0, 0.004, bars)))
    open_ = np.concatenate(([100.0], close[:-1]))
    ts = 1_600_000_000_000 + np.arange(bars) * 3_600_000
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    return engine.Bars(ts, open_, high, low, close, np.ones(bars))


GRID = {"fast": list(range(5, 55, 5)), "slow": list(range(20, 220, 20))}


def test_a_sweep_on_a_random_walk_is_deflated() -> None:
    bars = engine.synthetic(30_000, seed=3, interval="1h")
    table = engine.sweep("sma_cross", GRID, bars)
    assert table.best is not None
    assert table.best["sharpe"] > 0.4  # luck looks like skill...
    dsr = engine.deflate_sweep(table, bars)
    assert dsr is not None
    assert dsr.probability < 0.5  # ...until the number of trials is accounted for
    assert dsr.trials == table.evaluated
    root = math.sqrt(periods_per_year(bars.interval_ms) or 0)
    assert dsr.best_sharpe * root == pytest.approx(table.best["sharpe"])


def test_a_sweep_on_trending_prices_keeps_its_edge() -> None:
    bars = trending_bars()
    table = engine.sweep("sma_cross", GRID, bars)
    dsr = engine.deflate_sweep(table, bars)
    assert dsr is not None
    assert dsr.probability > 0.99


def test_equity_returns_start_from_the_cash() -> None:
    returns = equity_returns(np.array([110.0, 99.0, 99.0]), 100.0)
    assert returns == pytest.approx([0.1, -0.1, 0.0])
