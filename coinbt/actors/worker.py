"""A Worker: claims queued tasks from the TaskManager and runs them on the executor.

Its mailbox takes ``Abort`` messages: the TaskManager sends one after it recorded a cancel of the
task this worker runs, and the worker cancels the run (the executor kills its process). A run past
its spec's ``timeout_s`` is stopped the same way and reported as failed with a timeout error.
A run whose executor lost the process running it (``JobLostError``: a Dask worker died) is
handed back with ``RequeueTask``: re-queued like a task interrupted by a restart (attempt + 1).
Progress goes to a shared dict the read side overlays on the status read model (it is not an event).

A completed run's artifact files stay in the staging directory: the worker records them in the
artifact outbox (before it reports the outcome, so a crash in between loses nothing) and the
:class:`~coinbt.actors.uploader.Uploader` moves them into the store, retrying as long as it takes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import msgspec
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from coinbt.actors.base import Actor, Reply
from coinbt.actors.task_manager import Claim, ClaimTask, FinishTask, RequeueTask, TaskManager
from coinbt.actors.uploader import Uploader
from coinbt.artifacts.outbox import Outbox
from coinbt.datasets import Catalog
from coinbt.errors import CoinbtError, DatabaseError, InvalidTransitionError, ShuttingDownError
from coinbt.events import ArtifactRef, Completed, RuleSet
from coinbt.executor._errors import ExecutorUnavailableError, JobLostError
from coinbt.executor.base import BatchExecutor, Executor, Job, JobError, JobResult
from coinbt.executor.sweep_task import run_sweep_task
from coinbt.lifecycle import Complete, Fail
from coinbt.projections.live import LiveProgress
from coinbt.specs import DataPlan, resolve

__all__ = ("Abort", "Worker")

log = logging.getLogger("coinbt.worker")

_STAGE_TRIES = 3  # recording a run's artifacts: tries before the run is reported failed
_STAGE_BACKOFF_S = 0.1
_OUTCOME_BACKOFF_S = 0.2  # recording a run's outcome the log refused: first wait, doubling
_OUTCOME_BACKOFF_MAX_S = 10.0
_OUTCOME_RECHECKS = 8  # refusals as a stale transition tolerated after a database failure


@dataclass(frozen=True, slots=True)
class Abort:
    task_id: str
    attempt: int  # the run to stop: a later attempt of the task (re-queued) is not aborted


@dataclass(frozen=True, slots=True)
class _Lost:
    reason: str


_Report = tuple[Claim, Complete | Fail | _Lost | None, JobResult | None]
"""A finished run to report: its claim, its outcome (None: aborted), its result."""


class Worker(Actor[Abort]):
    def __init__(
        self,
        worker_id: str,
        task_manager: TaskManager,
        executor: Executor,
        outbox: Outbox,
        uploader: Uploader,
        catalog: Catalog,
        staging: Path,
        progress: LiveProgress,
        *,
        max_bars: int,
        batch: int = 64,
    ) -> None:
        super().__init__(capacity=64)
        self.name = f"worker-{worker_id}"
        self.worker_id = worker_id
        self._tm = task_manager
        self._executor = executor
        self._outbox = outbox
        self._uploader = uploader
        self._catalog = catalog
        self._staging = staging
        self._progress = progress
        self._max_bars = max_bars
        self._current: tuple[str, int] | None = None  # (task id, attempt) of the run going on
        self._scope: anyio.CancelScope | None = None
        self._aborted: set[tuple[str, int]] = set()  # runs of the claim in hand, aborted early
        self._held: set[tuple[str, int]] = set()  # runs of the claim in hand not started yet
        self._claiming = False  # a claim is on its way: an Abort may be for one of its tasks
        self._tg: TaskGroup | None = None
        self._pending = 0  # outcomes being reported
        self._pending_done = anyio.Event()
        self._batch = batch
        self.busy = False

    async def wait_uploads(self) -> None:
        """Return once every finished run is reported (and its artifacts are in the outbox)."""
        while self._pending:
            await self._pending_done.wait()

    async def on_start(self, tg: TaskGroup) -> None:
        self._tg = tg
        tg.start_soon(self._work)

    async def handle(self, message: Abort) -> None:
        run = (message.task_id, message.attempt)
        if run == self._current and self._scope is not None:
            self._scope.cancel()
        elif self._claiming or run in self._held:
            # Not started yet (in this batch, or in the claim on its way): skip it when it comes.
            self._aborted.add(run)
        # Else the run ended already (its result is refused): remembering the abort would skip
        # a later claim of the same task (re-queued on a shared log) after its Started.

    async def _work(self) -> None:
        """Run the claims the claimer hands over, one claim after another."""
        send, receive = anyio.create_memory_object_stream[tuple[list[Claim], anyio.Event]](0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._claim, send)
            async with receive:
                async for claims, finished in receive:
                    try:
                        await self._run_claims(claims)
                    finally:
                        finished.set()

    async def _claim(self, send: MemoryObjectSendStream[tuple[list[Claim], anyio.Event]]) -> None:
        """Ask the TaskManager for work and hand each claim to :meth:`_work`. While a batch of
        small tasks runs, the next claim is asked for already (its Started commit then overlaps
        the batch instead of idling the worker process between batches); a claim of one task,
        perhaps a long one, is run before the next claim is asked for (no task is started to wait
        behind it)."""
        async with send:
            while True:
                # A claim records Started: none while the executor cannot run anything (a lost
                # Dask scheduler), so queued tasks stay queued and use no attempt.
                await self._executor.wait_available()
                self._claiming = True
                try:
                    claims: list[Claim] = await self._tm.ask(
                        lambda reply: ClaimTask(self.worker_id, reply, self._batch)
                    )
                except ShuttingDownError:
                    return
                except CoinbtError as e:
                    log.warning("%s: claiming a task failed (%s); asking again", self.name, e)
                    await anyio.sleep(0.05)
                    continue
                finally:
                    self._claiming = False
                # The runs in hand: this claim's, and those of a claim still running.
                self._held |= {(claim.task_id, claim.attempt) for claim in claims}
                self._aborted &= self._held  # the rest were for runs that ended before
                finished = anyio.Event()
                await send.send((claims, finished))
                if len(claims) <= 1:
                    await finished.wait()

    async def _run_claims(self, claims: list[Claim]) -> None:
        if len(claims) > 1 and isinstance(self._executor, BatchExecutor):
            self.busy = True
            try:
                claims = await self._run_batch(self._executor, claims)
            finally:
                self.busy = False
        for claim in claims:
            run = (claim.task_id, claim.attempt)
            self._held.discard(run)
            if run in self._aborted:
                self._aborted.discard(run)
                continue
            self.busy = True
            try:
                await self._run(claim)
            finally:
                self.busy = False

    async def _run(self, claim: Claim) -> None:
        """Run one claimed task; report its outcome in the background and go on."""
        task_id, spec = claim.task_id, claim.spec
        out = self._staging / f"{task_id}-{claim.attempt}"
        outcome: Complete | Fail | _Lost | None = None
        result: JobResult | None = None
        plan: DataPlan | None = None
        # The scope covers resolving the data too: an Abort that comes meanwhile stops the run.
        with anyio.CancelScope() as scope:
            self._current, self._scope = (task_id, claim.attempt), scope
            try:
                plan = await resolve(spec, self._catalog, max_bars=self._max_bars, recorded=True)
                job = _job(claim, plan, out)
            except CoinbtError as e:  # e.g. the dataset vanished since the submission
                outcome = Fail(str(e), e.code)
            else:
                with anyio.move_on_after(spec.timeout_s) as deadline:
                    try:
                        if spec.sweep is None:
                            result = await self._executor.run(job, self._progress_of(task_id))
                        else:  # a sweep: its chunks on the executor (coinbt/executor/sweep_task)
                            result = await run_sweep_task(
                                self._executor, task_id, spec, plan, out, self._progress_of(task_id)
                            )
                    except (JobLostError, ExecutorUnavailableError) as e:
                        outcome = _Lost(str(e))
                    except JobError as e:
                        outcome = Fail(str(e), e.error_type)
                if deadline.cancelled_caught:
                    outcome = Fail(f"timed out after {spec.timeout_s:g} s", "timeout")
        self._current, self._scope = None, None
        if scope.cancelled_caught:  # aborted: the task is already recorded as cancelled
            outcome = None
        elif result is not None and plan is not None:
            outcome = _complete(task_id, claim.attempt, plan, result)
        self._spawn_report([(claim, outcome, result)])

    async def _run_batch(self, executor: BatchExecutor, claims: list[Claim]) -> list[Claim]:
        """Run the backtests of a claim of small tasks in one round trip to one worker process
        (their Started shared one group commit; their outcomes are told together, so their
        Completed share one too); the claims left to run one at a time: sweeps, and every task
        of a batch that timed out or whose process died (each then gets its own run, timeout and
        error). An Abort of a task in a running batch does not stop the batch (its tasks take
        milliseconds): that task's result is dropped when the batch returns."""
        plans: list[tuple[Claim, DataPlan, Job]] = []
        alone: list[Claim] = []
        reports: list[_Report] = []
        for claim in claims:
            if claim.spec.sweep is not None:
                alone.append(claim)
                continue
            run = (claim.task_id, claim.attempt)
            if run in self._aborted:  # cancelled before it started
                self._held.discard(run)
                self._aborted.discard(run)
                continue
            try:
                plan = await resolve(
                    claim.spec, self._catalog, max_bars=self._max_bars, recorded=True
                )
            except CoinbtError as e:  # e.g. the dataset vanished since the submission
                self._held.discard(run)
                reports.append((claim, Fail(str(e), e.code), None))
                continue
            out = self._staging / f"{claim.task_id}-{claim.attempt}"
            plans.append((claim, plan, _job(claim, plan, out)))
        self._spawn_report(reports)
        reports = []
        if not plans:
            return alone
        results: list[JobResult | JobError] | None = None
        with anyio.move_on_after(min(claim.spec.timeout_s for claim, _, _ in plans)):
            try:
                results = await executor.run_batch([job for _, _, job in plans])
            except (JobError, JobLostError, ExecutorUnavailableError) as e:
                log.warning("%s: a batch of %d tasks failed (%s)", self.name, len(plans), e)
        if results is None:  # one at a time, each with its own timeout and outcome
            return [claim for claim, _, _ in plans] + alone
        for (claim, plan, _), result in zip(plans, results, strict=True):
            run = (claim.task_id, claim.attempt)
            self._held.discard(run)
            outcome: Complete | Fail | None
            if run in self._aborted:  # recorded as cancelled meanwhile: the result is dropped
                self._aborted.discard(run)
                outcome = None
            elif isinstance(result, JobError):
                outcome = Fail(str(result), result.error_type)
            else:
                outcome = _complete(claim.task_id, claim.attempt, plan, result)
            reports.append((claim, outcome, result if isinstance(result, JobResult) else None))
        self._spawn_report(reports)
        return alone

    def _spawn_report(self, reports: list[_Report]) -> None:
        if not reports:
            return
        self._pending += len(reports)
        assert self._tg is not None
        self._tg.start_soon(self._report, reports)

    def _progress_of(self, task_id: str) -> Callable[[float], None]:
        progress = self._progress
        progress.set(task_id, 0.0)  # this run starts from nothing (a re-run: from nothing again)
        highest = [0.0]

        def report(fraction: float) -> None:
            if fraction > highest[0]:  # progress never goes back
                highest[0] = fraction
                progress.set(task_id, fraction)

        return report

    async def _report(self, reports: list[_Report]) -> None:
        """Record the completed runs' artifacts as pending uploads (one outbox transaction for
        all of them), then tell the TaskManager every outcome at once (their appends share a
        group commit). Storing the artifacts is the uploader's job from then on: a failing
        artifact store delays them, it never fails a task. A refused outcome (the task was
        cancelled meanwhile) is discarded with its artifacts."""
        outcomes: list[Complete | Fail | _Lost | None] = [outcome for _, outcome, _ in reports]
        completed = [
            (claim.task_id, outcome, result)
            for claim, outcome, result in reports
            if isinstance(outcome, Complete) and result is not None
        ]
        staged: dict[str, list[str]] = {}  # task id -> its artifacts' keys in the outbox
        uploading: set[str] = set()  # tasks whose files are the uploader's now
        try:
            if completed:
                try:
                    staged = await self._stage(completed)
                except CoinbtError as e:
                    # A Completed naming artifacts nobody recorded would be a result whose
                    # files are deleted: report the run failed instead, honestly.
                    failed = Fail(
                        f"the run finished but its artifacts could not be recorded: {e}",
                        "artifacts_unrecorded",
                    )
                    outcomes = [failed if isinstance(o, Complete) else o for o in outcomes]
            accepted = [False] * len(reports)
            # Every outcome is queued before any answer is awaited (their appends share a group
            # commit), with no task per outcome: a task each cost more service CPU than the
            # rest of the report. Only outcomes whose first answer is an error get a task each,
            # to be retried concurrently as before.
            sent: list[tuple[int, Claim, Complete | Fail | _Lost, Reply[int]]] = []
            for index, ((claim, _, _), outcome) in enumerate(zip(reports, outcomes, strict=True)):
                if outcome is not None:
                    sent.append((index, claim, outcome, await self._send_outcome(claim, outcome)))
            retry = []
            for index, claim, outcome, reply in sent:
                try:
                    await reply.wait()
                    accepted[index] = True
                except CoinbtError:
                    retry.append((index, claim, outcome, reply))

            async def tell(
                index: int, claim: Claim, outcome: Complete | Fail | _Lost, first: Reply[int]
            ) -> None:
                accepted[index] = await self._tell_outcome(claim, outcome, first)

            if retry:
                async with anyio.create_task_group() as tg:
                    for item in retry:
                        tg.start_soon(tell, *item)
            kept = {
                claim.task_id for (claim, _, _), ok in zip(reports, accepted, strict=True) if ok
            }
            uploading = kept & staged.keys()
            if uploading:
                self._uploader.notify()
            refused = [
                key for task_id, keys in staged.items() if task_id not in kept for key in keys
            ]
            if refused:
                await self._outbox.discard(refused)
        finally:
            files = []
            for claim, _, result in reports:
                # Kept for reads until the outcome is in the read models: no drop back to 0.
                self._progress.finish(claim.task_id)
                if result is not None and claim.task_id not in uploading:
                    files += [Path(a.path) for a in result.artifacts.values()]
            if files:
                await anyio.to_thread.run_sync(_remove, files)
            self._pending -= len(reports)
            self._pending_done.set()
            self._pending_done = anyio.Event()

    async def _send_outcome(self, claim: Claim, outcome: Complete | Fail | _Lost) -> Reply[int]:
        """Queue the outcome's message to the TaskManager; the reply to await (failed already
        if the message could not be queued)."""
        reply: Reply[int] = Reply()
        message = (
            RequeueTask(claim.task_id, claim.version, outcome.reason, reply)
            if isinstance(outcome, _Lost)
            else FinishTask(claim.task_id, claim.version, outcome, reply)
        )
        try:
            await self._tm.tell(message)
        except CoinbtError as e:
            reply.fail(e)
        return reply

    async def _tell_outcome(
        self, claim: Claim, outcome: Complete | Fail | _Lost, first: Reply[int] | None = None
    ) -> bool:
        """Have the TaskManager record the outcome (``first``: the reply to a message sent
        already); whether it did. While the log cannot take the append (a full disk, a lost
        database connection) it is tried again, backing off, for as long as the service runs:
        the run's outcome is not dropped. A refusal (the task was cancelled or re-queued
        meanwhile) discards it."""
        task_id, delay, refused_by_database = claim.task_id, _OUTCOME_BACKOFF_S, 0
        while True:
            try:
                reply, first = first or await self._send_outcome(claim, outcome), None
                await reply.wait()
                return True
            except DatabaseError as e:
                refused_by_database += 1
                log.warning("%s: recording the outcome of %s failed (%s)", self.name, task_id, e)
            except InvalidTransitionError as e:
                # Right after a failed append, the TaskManager may not have reloaded the task
                # yet (its state still shows the outcome it could not record): ask again.
                if not refused_by_database or refused_by_database > _OUTCOME_RECHECKS:
                    log.info("%s: result of %s discarded: %s", self.name, task_id, e)
                    return False
                refused_by_database += 1
            except CoinbtError as e:
                log.info("%s: result of %s discarded: %s", self.name, task_id, e)
                return False
            await anyio.sleep(delay)
            delay = min(delay * 2, _OUTCOME_BACKOFF_MAX_S)

    async def _stage(self, runs: list[tuple[str, Complete, JobResult]]) -> dict[str, list[str]]:
        """Put the runs' artifacts in the outbox (one transaction); task id -> their keys. A
        failing database is tried ``_STAGE_TRIES`` times in all; then its ``DatabaseError`` is
        raised."""
        items = [
            (
                task_id,
                [
                    (name, ref, Path(result.artifacts[name].path))
                    for name, ref in outcome.completed.artifacts.items()
                ],
            )
            for task_id, outcome, result in runs
        ]
        names = ", ".join(task_id for task_id, _, _ in runs)
        for attempt in range(1, _STAGE_TRIES + 1):
            try:
                await self._outbox.add_many(items)  # (an existing key is left as it is)
                break
            except CoinbtError as e:
                if attempt == _STAGE_TRIES:
                    log.error("%s: cannot record the artifacts of %s (%s)", self.name, names, e)
                    raise
                log.warning("%s: recording the artifacts of %s failed (%s)", self.name, names, e)
                await anyio.sleep(_STAGE_BACKOFF_S * attempt)
        return {
            task_id: [ref.key for ref in outcome.completed.artifacts.values()]
            for task_id, outcome, _ in runs
        }


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _job(claim: Claim, plan: DataPlan, out: Path) -> Job:
    spec = claim.spec
    return Job(
        task_id=claim.task_id,
        attempt=claim.attempt,
        strategy=spec.strategy,
        params=dict(spec.params),
        cash=spec.cash,
        fee_bps=spec.fee_bps,
        slippage_bps=spec.slippage_bps,
        fill=spec.fill,
        symbol=plan.symbol,
        out_dir=str(out),
        synthetic=spec.data.synthetic,
        dataset_path=None if plan.dataset_path is None else str(plan.dataset_path),
        start_ms=plan.start_ms,
        end_ms=plan.end_ms,
        rules=None if spec.rules is None else _rules(spec.rules),
        plugin_sha256=spec.source.sha256
        if spec.source is not None and spec.source.kind == "plugin"
        else None,
        direction=spec.direction,
        sl_stop=spec.sl_stop,
        tp_stop=spec.tp_stop,
        sl_trail=spec.sl_trail,
        size=spec.size,
        size_type=spec.size_type,
        datasets=[(symbol, str(path)) for symbol, path in plan.assets] or None,
    )


def _rules(rules: RuleSet) -> dict[str, str]:
    return {k: v for k, v in msgspec.structs.asdict(rules).items() if v is not None}


def _complete(task_id: str, attempt: int, plan: DataPlan, result: JobResult) -> Complete:
    """The one event a finished run adds: its fills, trades and equity are artifacts whose
    sha256 it records, its positions per-asset summaries."""
    artifacts = {
        name: ArtifactRef(
            key=f"tasks/{task_id}-{attempt}-{name}{os.path.splitext(a.path)[1] or '.npy'}",
            sha256=a.sha256,
            size=a.size,
        )
        for name, a in result.artifacts.items()
    }
    completed = Completed(
        metrics=result.metrics,
        result_digest=result.result_digest,
        artifacts=artifacts,
        symbol=plan.symbol,
        last_close=result.last_close,
        final_equity=result.final_equity,
        positions=result.positions,
        num_fills=result.num_fills,
    )
    return Complete(completed=completed)
