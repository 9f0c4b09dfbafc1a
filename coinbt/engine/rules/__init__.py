"""Rules: strategies as data (DESIGN.md section 10; docs/strategies.md).

A rule is a Python *expression* over the bars' columns, the spec's numeric parameters and the
function catalogue, parsed with ``ast`` (``mode="eval"``), checked against a whitelist of node
types and a type system (number series, boolean series, numbers), then evaluated with numpy.
It can never run code: there are no attributes, subscripts, strings, lambdas or comprehensions,
and only catalogue functions can be called.

    >>> from coinbt import engine
    >>> from coinbt.engine.rules import rules_strategy
    >>> s = rules_strategy({"entry": "cross_above(sma(close, fast), sma(close, slow))",
    ...                     "exit": "cross_below(sma(close, fast), sma(close, slow))"},
    ...                    {"fast": 10, "slow": 30})
    >>> [p.name for p in s.params]
    ['fast', 'slow']

Pure: numpy (and TA-Lib) only, nothing asynchronous.
"""

from __future__ import annotations

from coinbt.engine.rules._compile import MAX_CHARS, MAX_NODES, RuleSyntaxError, compile_rule
from coinbt.engine.rules.catalogue import COLUMNS, Function, catalogue, functions_json
from coinbt.engine.rules.strategy import (
    RULE_FIELDS,
    RULES_STRATEGY,
    check_rules,
    rules_strategy,
)

__all__ = (
    "COLUMNS",
    "MAX_CHARS",
    "MAX_NODES",
    "RULES_STRATEGY",
    "RULE_FIELDS",
    "Function",
    "RuleSyntaxError",
    "catalogue",
    "check_rules",
    "compile_rule",
    "functions_json",
    "rules_strategy",
)
