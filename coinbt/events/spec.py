"""The shape of a backtest spec, as submitted and as recorded in ``Queued``.

Only the shape and simple per-field bounds live here (msgspec checks them while decoding, with the
field's path in the error). Rules that need the strategy registry or the dataset catalogue
(unknown strategy, fast >= slow, unknown dataset, empty range) are checked by ``coinbt.specs``.
Bounds may only loosen over time: a stored spec must always decode.

Structs are ``gc=False`` like the events (they hold only scalars, lists and dicts of scalars, and
other specs: no reference cycles). A tracked ``TaskSpec`` in every ``Queued`` made replay spend
about half of its decoding time in garbage-collector passes over the decoded specs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

__all__ = (
    "DataSpec",
    "FillMode",
    "GridRange",
    "ParamValue",
    "RuleSet",
    "StrategySource",
    "SweepOptions",
    "SyntheticSpec",
    "TaskSpec",
    "WalkForwardSpec",
)

FillMode = Literal["next_open", "close"]
Direction = Literal["long", "short", "both"]
SizeType = Literal["all", "percent", "value", "amount", "target_percent"]
ParamValue = bool | int | float | str
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


class SyntheticSpec(
    msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True, omit_defaults=False
):
    """A deterministic geometric-Brownian-motion series: same (bars, seed, ...) -> same bars."""

    bars: Annotated[int, msgspec.Meta(ge=2)]
    seed: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] = 1
    interval: str = "1m"
    start_price: Annotated[float, msgspec.Meta(gt=0)] = 100.0
    symbols: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1  # a portfolio: seeds seed..seed+N-1


class DataSpec(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """Either an imported ``dataset`` (optional ``version``, ``start``/``end``) or a
    ``synthetic`` series. A submission without ``version`` is recorded with the dataset's latest
    version at that moment (``Queued`` says which); tasks recorded before versions existed have
    none, which means version 1 (the only one there was). ``datasets`` names
    several (a portfolio; ``start``/``end`` apply to all) with ``versions``, one per dataset in
    the same order: given, or recorded by ``Queued`` as each one's latest version at submission
    (a portfolio recorded before ``versions`` existed runs on the latest). A ``synthetic`` series
    with ``symbols`` > 1 is a portfolio too."""

    dataset: str | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    synthetic: SyntheticSpec | None = None
    version: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None
    datasets: list[str] | None = None
    versions: list[Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]] | None = None


class RuleSet(
    msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True, omit_defaults=True
):
    """A ``"strategy": "rules"`` strategy: conditions over the bars (docs/strategies.md)."""

    entry: str
    exit: str
    short_entry: str | None = None
    short_exit: str | None = None


class StrategySource(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """Which code produced a result, recorded by the server at submission (never taken from
    the client): ``builtin`` (with the coinbt version), ``plugin`` (its module, the sha256 of
    the module's source and its package version) or ``rules`` (the text is ``spec.rules``)."""

    kind: str
    version: str | None = None
    module: str | None = None
    sha256: str | None = None


class GridRange(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """A grid axis as ``start``, ``start + step``, ... up to and including ``stop``."""

    start: int | float
    stop: int | float
    step: int | float


class WalkForwardSpec(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """Walk-forward windows: durations such as ``"180d"`` and ``"30d"``; ``anchored`` trains
    on everything since the first bar instead of a rolling window."""

    train: str
    test: str
    anchored: bool = False


class SweepOptions(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """What makes a task a sweep (DESIGN section 11): every combination of ``grid`` (values as
    lists or ranges; the spec's ``params`` fill in the parameters the grid leaves out), ranked by
    ``sort_by``; with ``walk_forward``, a walk-forward analysis of the grid."""

    grid: dict[str, list[ParamValue] | GridRange]
    sort_by: str = "sharpe"
    descending: bool = True
    walk_forward: WalkForwardSpec | None = None


class TaskSpec(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """One backtest: strategy and parameters, data, costs and limits.

    ``rules`` goes with ``"strategy": "rules"``. ``source`` is filled in by the server when the
    task is queued (a value sent by a client is replaced), as are the parameters' defaults.
    """

    strategy: str
    data: DataSpec
    params: dict[str, ParamValue] = {}
    cash: Annotated[float, msgspec.Meta(gt=0)] = 10_000.0
    fee_bps: Annotated[float, msgspec.Meta(ge=0, lt=10_000)] = 10.0
    slippage_bps: Annotated[float, msgspec.Meta(ge=0, lt=10_000)] = 0.0
    fill: FillMode = "next_open"
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    rules: RuleSet | None = None
    source: StrategySource | None = None
    direction: Direction = "long"
    sl_stop: Annotated[float, msgspec.Meta(gt=0, lt=1)] | None = None
    tp_stop: Annotated[float, msgspec.Meta(gt=0)] | None = None
    sl_trail: bool = False
    size: Annotated[float, msgspec.Meta(gt=0)] | None = None
    size_type: SizeType = "all"
    sweep: SweepOptions | None = None  # a sweep task (POST /sweeps), not a single backtest
