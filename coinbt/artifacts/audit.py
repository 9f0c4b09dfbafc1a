"""``coinbt audit verify --artifacts``: every artifact a ``Completed`` event records is checked
against the sha256 (and size) the event holds, wherever the artifact outbox says it is.

The hash chain covers the events, and so the recorded sha256s; this check extends it to the bytes
of each run's equity curve, fills and trades. A stored artifact is read from its store; one still
pending upload is checked in its staged file; one the outbox gave up on (``failed``) is reported.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from coinbt.artifacts.locations import ArtifactLocations
from coinbt.artifacts.outbox import LOCAL, Outbox
from coinbt.errors import CoinbtError
from coinbt.events import ArtifactRef, Completed
from coinbt.store.base import EventStore, Progress

__all__ = ("ArtifactAudit", "ArtifactProblem", "audit_artifacts")

_PAGE = 2000


@dataclass(frozen=True, slots=True)
class ArtifactProblem:
    task_id: str
    name: str
    key: str
    reason: str


@dataclass(slots=True)
class ArtifactAudit:
    checked: int = 0
    problems: list[ArtifactProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def audit_artifacts(
    store: EventStore,
    outbox: Outbox,
    locations: ArtifactLocations,
    progress: Progress | None = None,
) -> ArtifactAudit:
    """Check every recorded artifact (see the module docstring); ``progress(events read, events
    in the log)`` after each page of the log."""
    audit = ArtifactAudit()
    after = 0
    total = await store.last_position()
    while page := await store.read_all(after, _PAGE):
        for stored in page:
            event = stored.event
            if not isinstance(event, Completed):
                continue
            for name, ref in sorted(event.artifacts.items()):
                reason = await _check(ref, outbox, locations)
                audit.checked += 1
                if reason is not None:
                    audit.problems.append(ArtifactProblem(stored.stream_id, name, ref.key, reason))
        after = page[-1].position
        if progress is not None:
            progress(after, max(total, after))
    return audit


async def _check(ref: ArtifactRef, outbox: Outbox, locations: ArtifactLocations) -> str | None:
    """What is wrong with the artifact's bytes, or None."""
    row = await outbox.get(ref.key)
    try:
        if row is not None and row.state == "failed":
            return f"lost: {row.last_error or 'its upload can never succeed'}"
        if row is not None and row.state == "pending" and row.staged is not None:
            staged = locations.data_dir / row.staged
            data = await anyio.to_thread.run_sync(_read, staged)
            where = f"staged file {staged}"
        else:
            location = row.location if row is not None and row.location else LOCAL
            data = await (await locations.get(location)).get_bytes(ref.key)
            where = location
    except (OSError, CoinbtError) as e:
        return f"unreadable: {e}"
    digest = hashlib.sha256(data).hexdigest()
    if digest != ref.sha256:
        return f"sha256 {digest} in {where}, but the log records {ref.sha256}"
    if len(data) != ref.size:
        return f"{len(data)} bytes in {where}, but the log records {ref.size}"
    return None


def _read(path: Path) -> bytes:
    return path.read_bytes()
