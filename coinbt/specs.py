"""Checking a submitted spec against the rules msgspec cannot see, and resolving its data.

msgspec checks the shape and per-field bounds while decoding (``coinbt.events.spec``); this module
checks what needs the strategy registry and the dataset catalogue: an unknown strategy, bad
parameters (types, ranges, fast >= slow), no data or both kinds, an unknown dataset, an empty range,
a window longer than the data, too many synthetic bars. Every problem is a ``FieldError`` with the
field's path, and all of them are reported at once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec

from coinbt import defaults
from coinbt.datasets import Catalog, iso_ms
from coinbt.errors import CoinbtError, DataError, DatasetNotFoundError, FieldError, SpecError
from coinbt.events import ParamValue, StrategySource, TaskSpec

__all__ = (
    "DEFAULT_MAX_BARS",
    "MAX_TIMEOUT_S",
    "DataPlan",
    "decode_spec",
    "decode_specs",
    "resolve",
    "validate",
)

DEFAULT_MAX_BARS = defaults.MAX_BARS
MAX_TIMEOUT_S = 7 * 86_400.0  # a week: a longer limit is no limit (and 1e308 overflows a deadline)
SYNTHETIC_SYMBOL = "SYNTH"


@dataclass(frozen=True, slots=True)
class DataPlan:
    """Where a task's bars come from and how many there are."""

    symbol: str
    bars: int
    dataset_path: Path | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    params: dict[str, ParamValue] = field(default_factory=dict)  # defaults filled in
    source: StrategySource | None = None
    dataset_version: int | None = None  # the version resolved (recorded in Queued)
    dataset_versions: tuple[int, ...] = ()  # a portfolio's, in dataset order (recorded too)
    assets: tuple[tuple[str, Path], ...] = ()  # a portfolio of datasets: (symbol, file) each
    symbols: tuple[str, ...] = ()  # a portfolio's asset names, in asset order

    @property
    def n_assets(self) -> int:
        return max(1, len(self.symbols))


_json_decoder = msgspec.json.Decoder(TaskSpec)
_batch_decoder = msgspec.json.Decoder(list[TaskSpec])


def decode_spec(body: bytes) -> TaskSpec:
    """Decode a JSON spec: ``SpecError`` naming the field for a wrong shape or bound.

    Malformed JSON raises ``msgspec.DecodeError`` (not a ``ValidationError``), which the HTTP layer
    answers with 400 rather than 422.
    """
    try:
        return _json_decoder.decode(body)
    except msgspec.ValidationError as e:
        raise SpecError(_every_field_error(body, e)) from e


# Decodable stand-ins for a required field that is wrong or missing, so that decoding again can
# find the errors of the other fields (msgspec stops at the first).
_STAND_INS: dict[str, Any] = {"strategy": "buy_and_hold", "data": {"synthetic": {"bars": 2}}}


def _every_field_error(body: bytes, first: msgspec.ValidationError) -> list[FieldError]:
    """The first error of every top-level field, not only the first one msgspec meets: decode
    again without each bad field (a stand-in for a required one) until the rest decodes."""
    errors = [field_error(first)]
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return errors
    if not isinstance(raw, dict):
        return errors
    for _ in range(len(raw) + len(_STAND_INS)):
        key = re.split(r"[.\[]", errors[-1].field, maxsplit=1)[0]
        if key in _STAND_INS and raw.get(key) != _STAND_INS[key]:
            raw[key] = _STAND_INS[key]
        elif key in raw:
            del raw[key]
        else:
            break
        try:
            _json_decoder.decode(msgspec.json.encode(raw))
        except msgspec.ValidationError as e:
            error = field_error(e)
            if any(error.field == seen.field for seen in errors):
                break
            errors.append(error)
        else:
            break
    return errors


def decode_specs(body: bytes) -> list[TaskSpec]:
    """Decode a JSON array of specs (a batch): like :func:`decode_spec`, the field path starting
    with the element's index (``[3].params.fast``)."""
    try:
        return _batch_decoder.decode(body)
    except msgspec.ValidationError as e:
        raise SpecError([field_error(e)]) from e


def field_error(error: msgspec.ValidationError) -> FieldError:
    """``Expected `int`, got `str` - at `$.params.fast``` -> FieldError("params.fast", ...)."""
    text = str(error)
    message, sep, where = text.rpartition(" - at `")
    if not sep:
        message, path = text, ""
    else:
        path = where.rstrip("`").removeprefix("$").lstrip(".").replace("[...]", "")
    named = re.search(r"(?:missing required|contains unknown) field `([^`]+)`", message)
    if named:  # the problem is a field inside the object at ``path``: name that field
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return FieldError(path, message)


async def validate(spec: TaskSpec, catalog: Catalog, *, max_bars: int) -> DataPlan:
    """Check every rule; raise one ``SpecError`` listing every bad field, or return the data.

    The engine's own ``validate_spec`` checks the strategy, its parameters and the costs (and,
    given the number of bars, that the data is long enough, naming the window parameter); this adds
    the data rules and ``timeout_s``.
    """
    from coinbt.engine import validate_spec

    errors: list[FieldError] = []
    if not math.isfinite(spec.timeout_s):
        errors.append(FieldError("timeout_s", "must be a finite number"))
    elif spec.timeout_s > MAX_TIMEOUT_S:
        errors.append(FieldError("timeout_s", f"at most {MAX_TIMEOUT_S:,.0f} seconds (7 days)"))
    if spec.sweep is not None:
        errors.append(FieldError("sweep", "submit a sweep with POST /sweeps"))
    plan: DataPlan | None = None
    try:
        plan = await resolve(spec, catalog, max_bars=max_bars)
    except SpecError as e:
        errors.extend(e.errors)
    engine_spec = engine_spec_of(spec)
    try:
        valid = validate_spec(
            engine_spec,
            None if plan is None else plan.bars,
            n_assets=_n_assets(spec) if plan is None else plan.n_assets,
        )
    except SpecError as e:
        errors.extend(e.errors)
    if errors:
        raise SpecError(errors)
    assert plan is not None
    return replace(plan, params=dict(valid.params), source=source_of(valid.strategy))


def engine_spec_of(spec: TaskSpec) -> Any:
    """The engine's ``BacktestSpec`` for a task's spec."""
    from coinbt.engine import BacktestSpec

    rules = None
    if spec.rules is not None:
        rules = {k: v for k, v in msgspec.structs.asdict(spec.rules).items() if v is not None}
    return BacktestSpec(
        strategy=spec.strategy,
        params=spec.params,
        cash=spec.cash,
        fee_bps=spec.fee_bps,
        slippage_bps=spec.slippage_bps,
        fill=spec.fill,
        rules=rules,
        direction=spec.direction,
        sl_stop=spec.sl_stop,
        tp_stop=spec.tp_stop,
        sl_trail=spec.sl_trail,
        size=spec.size,
        size_type=spec.size_type,
    )


def _n_assets(spec: TaskSpec) -> int:
    data = spec.data
    if data.datasets is not None:
        return max(1, len(data.datasets))
    return data.synthetic.symbols if data.synthetic is not None else 1


def source_of(strategy: Any) -> StrategySource:
    """Where a validated strategy's code comes from (recorded in ``Queued``)."""
    from coinbt import __version__

    provenance = strategy.provenance
    if strategy.source == "plugin":
        return StrategySource(
            kind="plugin",
            version=provenance.get("version"),
            module=provenance.get("module"),
            sha256=provenance.get("sha256"),
        )
    return StrategySource(kind=strategy.source, version=__version__)


async def resolve(
    spec: TaskSpec, catalog: Catalog, *, max_bars: int, recorded: bool = False
) -> DataPlan:
    """The data a spec names: synthetic parameters, or a dataset file and its time range.

    ``recorded``: the spec is a recorded task's (a worker running it), not a new submission: a
    retired dataset still serves it, and no ``version`` means version 1 (recorded before
    versions existed)."""
    data = spec.data
    given = [data.dataset is not None, data.datasets is not None, data.synthetic is not None]
    if sum(given) != 1:
        raise SpecError("give exactly one of 'dataset', 'datasets' and 'synthetic'", field="data")
    if data.versions is not None and data.datasets is None:
        raise SpecError("versions apply to datasets (one version each)", field="data.versions")
    if data.datasets is not None:
        if data.version is not None:
            raise SpecError("version applies to one dataset, not to datasets", field="data")
        return await _resolve_portfolio(
            data.datasets, data.versions, data.start, data.end, catalog, max_bars, recorded
        )
    if data.synthetic is not None:
        if data.version is not None:
            raise SpecError("version applies to datasets, not to synthetic data", field="data")
        if data.start is not None or data.end is not None:
            raise SpecError("start/end apply to datasets, not to synthetic data", field="data")
        synthetic = data.synthetic
        if synthetic.bars > max_bars:
            raise SpecError(f"at most {max_bars:,} bars", field="data.synthetic.bars")
        from coinbt.engine import parse_interval

        try:
            parse_interval(synthetic.interval)
        except SpecError as e:  # its own message, without its own field ("interval: ...")
            raise SpecError(e.errors[0].message, field="data.synthetic.interval") from e
        except (DataError, ValueError) as e:
            raise SpecError(str(e), field="data.synthetic.interval") from e
        if synthetic.bars * synthetic.symbols > max_bars:
            raise SpecError(
                f"at most {max_bars:,} bars in all ({synthetic.symbols} symbols x "
                f"{synthetic.bars:,} bars)",
                field="data.synthetic.symbols",
            )
        if synthetic.symbols > 1:
            names = tuple(f"{SYNTHETIC_SYMBOL}{i + 1}" for i in range(synthetic.symbols))
            return DataPlan(symbol=names[0], bars=synthetic.bars, symbols=names)
        return DataPlan(symbol=SYNTHETIC_SYMBOL, bars=synthetic.bars)
    assert data.dataset is not None
    version = 1 if recorded and data.version is None else data.version
    try:
        info = await catalog.get(data.dataset, version, include_retired=recorded)
    except DatasetNotFoundError as e:
        field = "data.version" if e.version is not None else "data.dataset"
        raise SpecError(str(e), field=field) from e
    start_ms = None if data.start is None else int(data.start.timestamp() * 1000)
    end_ms = None if data.end is None else int(data.end.timestamp() * 1000)
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        raise SpecError("start must be before end", field="data.start")
    bars = await _count(catalog.path_of(info), start_ms, end_ms, info.rows)
    if bars == 0:
        raise SpecError(
            f"dataset {info.name!r} has no bars between the given start and end "
            f"(it covers {iso_ms(info.start_ms)} to {iso_ms(info.end_ms)})",
            field="data.start" if start_ms is not None else "data.end",
        )
    return DataPlan(
        symbol=info.symbol,
        bars=bars,
        dataset_path=catalog.path_of(info),
        start_ms=start_ms,
        end_ms=end_ms,
        dataset_version=info.version,
    )


def _range(start: Any, end: Any) -> tuple[int | None, int | None]:
    start_ms = None if start is None else int(start.timestamp() * 1000)
    end_ms = None if end is None else int(end.timestamp() * 1000)
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        raise SpecError("start must be before end", field="data.start")
    return start_ms, end_ms


async def _resolve_portfolio(
    names: list[str],
    versions: list[int] | None,
    start: Any,
    end: Any,
    catalog: Catalog,
    max_bars: int,
    recorded: bool,
) -> DataPlan:
    """Several datasets, each at its version in ``versions`` (default: its latest): each must
    exist, and their bars must align on timestamps over the range they all cover (the engine's
    rule, checked here so a bad portfolio is a 422)."""
    if not names:
        raise SpecError("name at least one dataset", field="data.datasets")
    if versions is not None and len(versions) != len(names):
        raise SpecError(
            f"give one version per dataset: {len(names)} datasets, {len(versions)} versions",
            field="data.versions",
        )
    errors: list[FieldError] = []
    infos = []
    for i, name in enumerate(names):
        if name in names[:i]:
            errors.append(FieldError(f"data.datasets[{i}]", f"{name!r} is named twice"))
            continue
        version = None if versions is None else versions[i]
        try:
            infos.append(await catalog.get(name, version, include_retired=recorded))
        except DatasetNotFoundError as e:
            field = f"data.versions[{i}]" if e.version is not None else f"data.datasets[{i}]"
            errors.append(FieldError(field, str(e)))
    if errors:
        raise SpecError(errors)
    start_ms, end_ms = _range(start, end)
    symbols = [info.symbol for info in infos]
    if len(set(symbols)) < len(symbols):  # two datasets of one symbol: name them by dataset
        symbols = [info.name for info in infos]
    paths = [catalog.path_of(info) for info in infos]
    import anyio

    def aligned() -> int:
        from coinbt.engine import load_bars
        from coinbt.engine.portfolio import align

        assets = {}
        for i, (symbol, path) in enumerate(zip(symbols, paths, strict=True)):
            try:
                assets[symbol] = load_bars(path).slice(start_ms, end_ms)
            except CoinbtError as e:
                raise SpecError(
                    f"dataset {names[i]!r} has no bars between the given start and end ({e})",
                    field=f"data.datasets[{i}]",
                ) from None
        return len(align(assets)[1][0])

    bars = await anyio.to_thread.run_sync(aligned)
    if bars * len(infos) > max_bars:
        raise SpecError(f"at most {max_bars:,} bars in all", field="data.datasets")
    return DataPlan(
        symbol=symbols[0],
        bars=bars,
        dataset_path=paths[0],
        start_ms=start_ms,
        end_ms=end_ms,
        assets=tuple(zip(symbols, paths, strict=True)),
        symbols=tuple(symbols),
        dataset_versions=tuple(info.version for info in infos),
    )


async def _count(path: Path, start_ms: int | None, end_ms: int | None, rows: int) -> int:
    if start_ms is None and end_ms is None:
        return rows
    import anyio

    def count() -> int:
        from coinbt.engine import load_bars

        try:
            return len(load_bars(path).slice(start_ms, end_ms))
        except CoinbtError:
            return 0

    return await anyio.to_thread.run_sync(count)
