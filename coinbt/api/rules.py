"""``/functions`` (the rules' function catalogue) and ``/rules/validate`` (check a rule set as it
is typed, without submitting anything)."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from coinbt import defaults
from coinbt.api._params import read_body
from coinbt.api.errors import json_response
from coinbt.errors import InvalidRequestError

__all__ = ("RulesApi",)

BODY_LIMIT = defaults.RULES_BODY_LIMIT


class RulesCheckIn(msgspec.Struct, forbid_unknown_fields=True):
    """A rule set to check: ``rules`` as in a spec, its ``params``, and optionally the number of
    bars it will run on (windows longer than that are errors)."""

    rules: dict[str, Any]
    params: dict[str, Any] = {}
    bars: int | None = None


_decoder = msgspec.json.Decoder(RulesCheckIn)


def _check(body: RulesCheckIn) -> dict[str, Any]:
    from coinbt.engine.rules import rules_strategy
    from coinbt.errors import SpecError

    try:
        strategy = rules_strategy(body.rules, body.params, body.bars)
    except SpecError as e:
        return {"valid": False, "errors": [err.to_dict() for err in e.errors], "params": None}
    return {"valid": True, "errors": [], "params": strategy.schema()}


class RulesApi:
    async def functions(self, request: Request) -> Response:
        from coinbt.engine.rules import COLUMNS, MAX_CHARS, MAX_NODES, functions_json

        body = {
            "functions": functions_json(),
            "columns": list(COLUMNS),
            "limits": {"characters": MAX_CHARS, "nodes": MAX_NODES},
        }
        return json_response(body)

    async def validate(self, request: Request) -> Response:
        """200 ``{"valid", "errors": [{"field", "message", "column"}], "params"}``: a rule set
        with problems is a normal answer here (the dashboard asks on every keystroke); a body
        that is not such an object is 400/422."""
        raw = await read_body(request, BODY_LIMIT)
        try:
            body = _decoder.decode(raw)
        except msgspec.ValidationError as e:
            from coinbt.errors import SpecError
            from coinbt.specs import field_error

            raise SpecError([field_error(e)]) from e
        except msgspec.DecodeError as e:
            raise InvalidRequestError(f"malformed JSON: {e}", code="malformed_json") from None
        if body.bars is not None and body.bars < 1:
            raise InvalidRequestError("must be a positive number of bars", field="bars")
        return json_response(await anyio.to_thread.run_sync(_check, body))
