"""Typed, range-checked strategy parameters and their JSON-schema-like description."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ("Param", "ParamError")

Number = int | float


class ParamError(ValueError):
    """One parameter value is invalid (the message says why)."""


@dataclass(frozen=True, slots=True)
class Param:
    """One strategy parameter: ``kind`` "integer" (a Python int, never a bool) or "number"."""

    name: str
    kind: Literal["integer", "number"]
    default: Number
    minimum: Number
    maximum: Number
    description: str
    exclusive_minimum: bool = False

    def schema(self) -> dict[str, object]:
        out: dict[str, object] = {"type": self.kind}
        out["exclusiveMinimum" if self.exclusive_minimum else "minimum"] = self.minimum
        out["maximum"] = self.maximum
        out["default"] = self.default
        out["description"] = self.description
        return out

    def coerce(self, value: object) -> Number:
        """The value as an int or float, or :class:`ParamError`."""
        if self.kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ParamError(f"must be an integer, got {_show(value)}")
            number: Number = int(value)
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParamError(f"must be a number, got {_show(value)}")
            number = float(value)
            if not math.isfinite(number):
                raise ParamError(f"must be a finite number, got {number!r}")
        low_ok = number > self.minimum if self.exclusive_minimum else number >= self.minimum
        if not low_ok or number > self.maximum:
            low = f"({self.minimum}" if self.exclusive_minimum else f"[{self.minimum}"
            raise ParamError(f"must be in {low}, {self.maximum}], got {number!r}")
        return number


def _show(value: object) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    return f"{value!r} ({type(value).__name__})"
