"""The overfitting guard: the deflated Sharpe ratio of the best of many trials.

Bailey, D. H. and López de Prado, M. (2014), "The Deflated Sharpe Ratio: Correcting for
Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5).
Formulas, with every symbol, in docs/sweeps.md. Pure Python and numpy; the normal distribution
comes from the standard library (``statistics.NormalDist``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coinbt.engine.backtest import run
from coinbt.engine.data import Bars
from coinbt.engine.metrics import periods_per_year
from coinbt.engine.spec import BacktestSpec
from coinbt.engine.sweep import SweepResult

__all__ = (
    "DeflatedSharpe",
    "deflate_sweep",
    "deflated_sharpe",
    "equity_returns",
    "expected_max_sharpe",
    "probabilistic_sharpe",
    "return_moments",
)

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class DeflatedSharpe:
    """The deflated Sharpe ratio of a sweep's best row, with everything it was computed from.

    Sharpe ratios here are per bar (not annualized): ``annual = per_bar * sqrt(bars a year)``.
    ``probability`` is the DSR: the probability that the best row's true Sharpe is above zero,
    after allowing for ``trials`` tries (how high the best of that many zero-skill trials would
    reach: ``expected_max_sharpe``) and for the skew and kurtosis of its returns.
    """

    probability: float
    best_sharpe: float  # per bar
    expected_max_sharpe: float  # per bar: SR0, the best Sharpe luck alone would give
    trials: int
    sharpe_variance: float  # of the trials' per-bar Sharpe ratios
    observations: int  # T: the number of returns of the best row
    skew: float
    kurtosis: float  # not excess: 3 for normal returns

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def expected_max_sharpe(trials: int, sharpe_variance: float) -> float:
    """SR0: the expected maximum Sharpe of ``trials`` independent zero-skill trials whose
    Sharpe ratios have variance ``sharpe_variance`` (False Strategy theorem). 0 for one trial."""
    if trials < 1:
        raise ValueError("trials must be at least 1")
    if trials == 1 or sharpe_variance <= 0.0:
        return 0.0
    first = _NORMAL.inv_cdf(1.0 - 1.0 / trials)
    second = _NORMAL.inv_cdf(1.0 - 1.0 / (trials * math.e))
    return math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * first + EULER_GAMMA * second)


def probabilistic_sharpe(
    sharpe: float, benchmark: float, observations: int, skew: float, kurtosis: float
) -> float:
    """PSR: the probability that the true per-bar Sharpe exceeds ``benchmark``, given an observed
    ``sharpe`` over ``observations`` returns with this skew and (non-excess) kurtosis."""
    if observations < 2:
        return math.nan
    denominator = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if not denominator > 0.0:  # only for absurd moments: no information
        return math.nan
    z = (sharpe - benchmark) * math.sqrt(observations - 1) / math.sqrt(denominator)
    return _NORMAL.cdf(z)


def return_moments(returns: NDArray[np.float64]) -> tuple[float, float, float]:
    """(per-bar Sharpe, skew, non-excess kurtosis) of a return series, with the Sharpe as the
    engine computes it (sample standard deviation). A constant series: (0, 0, 3)."""
    n = len(returns)
    if n < 2:
        return 0.0, 0.0, 3.0
    mean = float(returns.mean())
    centered = returns - mean
    m2 = float(np.mean(centered**2))
    if m2 <= 0.0:
        return 0.0, 0.0, 3.0
    sd = math.sqrt(m2 * n / (n - 1))
    skew = float(np.mean(centered**3)) / m2**1.5
    kurtosis = float(np.mean(centered**4)) / (m2 * m2)
    return mean / sd, skew, kurtosis


def deflated_sharpe(
    best_returns: NDArray[np.float64], trial_sharpes: Sequence[float | None]
) -> DeflatedSharpe:
    """The DSR of the trial whose per-bar returns are ``best_returns``, chosen as the best of
    ``trial_sharpes`` (every trial's per-bar Sharpe; None, an undefined Sharpe such as a trial
    that never traded, counts as a trial with Sharpe 0)."""
    sharpes = np.array([0.0 if s is None else float(s) for s in trial_sharpes], dtype=np.float64)
    if len(sharpes) == 0:
        raise ValueError("no trials")
    variance = float(sharpes.var(ddof=1)) if len(sharpes) > 1 else 0.0
    sharpe, skew, kurtosis = return_moments(np.asarray(best_returns, dtype=np.float64))
    sr0 = expected_max_sharpe(len(sharpes), variance)
    probability = probabilistic_sharpe(sharpe, sr0, len(best_returns), skew, kurtosis)
    return DeflatedSharpe(
        probability=probability,
        best_sharpe=sharpe,
        expected_max_sharpe=sr0,
        trials=len(sharpes),
        sharpe_variance=variance,
        observations=len(best_returns),
        skew=skew,
        kurtosis=kurtosis,
    )


def equity_returns(equity: NDArray[np.float64], cash: float) -> NDArray[np.float64]:
    """Per-bar returns of an equity curve that started at ``cash`` (the engine's metrics use
    the same series: the first bar's return is against the starting cash)."""
    path = np.concatenate(((cash,), np.asarray(equity, dtype=np.float64)))
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = path[1:] / path[:-1] - 1.0
    returns[~np.isfinite(returns)] = 0.0
    return returns


def deflate_sweep(
    result: SweepResult,
    bars: Bars,
    *,
    cash: float = 10_000.0,
    fee_bps: float = 10.0,
    slippage_bps: float = 0.0,
    fill: str = "next_open",
    rules: Mapping[str, str] | None = None,
) -> DeflatedSharpe | None:
    """The DSR of a sweep's best row (by its ``sort_by``), every evaluated row a trial: the
    best row is run again for its returns (``rules``: a rules strategy's conditions). None if
    the bars have no known interval."""
    ppy = periods_per_year(bars.interval_ms)
    best = result.best
    if not ppy or best is None:
        return None
    root = math.sqrt(ppy)
    params = {name: best[name] for name in result.param_names if name in best}
    spec = BacktestSpec(result.strategy, params, cash, fee_bps, slippage_bps, fill, rules)
    run_result = run(spec, bars)
    sharpes = [None if row["sharpe"] is None else row["sharpe"] / root for row in result.rows]
    return deflated_sharpe(equity_returns(run_result.equity, cash), sharpes)
