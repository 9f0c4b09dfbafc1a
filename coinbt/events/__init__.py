"""Events: the payload types, their stored envelope and the codec. Imports nothing async."""

from coinbt.events.codec import (
    CURRENT_SCHEMA,
    GENESIS_HASH,
    canonical_bytes,
    chain_hash,
    decode_payload,
    encode_payload,
    register_upcaster,
)
from coinbt.events.envelope import StoredEvent
from coinbt.events.spec import DataSpec, FillMode, ParamValue, SyntheticSpec, TaskSpec
from coinbt.events.types import (
    EVENT_TYPES,
    TERMINAL_TYPES,
    ArtifactRef,
    Cancelled,
    Completed,
    Failed,
    Filled,
    PositionSummary,
    Queued,
    Started,
    TaskEvent,
    event_type,
)

__all__ = (
    "CURRENT_SCHEMA",
    "EVENT_TYPES",
    "GENESIS_HASH",
    "TERMINAL_TYPES",
    "ArtifactRef",
    "Cancelled",
    "Completed",
    "DataSpec",
    "Failed",
    "FillMode",
    "Filled",
    "ParamValue",
    "PositionSummary",
    "Queued",
    "Started",
    "StoredEvent",
    "SyntheticSpec",
    "TaskEvent",
    "TaskSpec",
    "canonical_bytes",
    "chain_hash",
    "decode_payload",
    "encode_payload",
    "event_type",
    "register_upcaster",
)
