"""Parsing and type-checking one rule expression into a small tree of tuples.

The text is checked for length and bracket depth BEFORE ``ast.parse`` (which recurses), parsed
with ``mode="eval"``, counted (iteratively) against the node limit, then walked once: every node
type not whitelisted is an error, every name and call is resolved against the columns, the
spec's parameters and the function catalogue, and every operand's type is checked. Errors carry
the 1-based column of the offending node.

The tree (``Node``) is hashable, so equal subexpressions are equal keys (see ``_eval.py``):
``("col", name)``, ``("const", value)``, ``("param", name)``, ``("call", fname, args)``,
``("neg", x)``, ``("not", x)``, ``("arith", op, a, b)``, ``("cmp", op, a, b)``,
``("and", items)``, ``("or", items)``.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from coinbt.engine.rules.catalogue import COLUMNS, MAX_WINDOW, Arg, Function, catalogue

__all__ = ("MAX_CHARS", "MAX_DEPTH", "MAX_NODES", "Compiled", "RuleSyntaxError", "compile_rule")

MAX_CHARS = 2_000
MAX_NODES = 200
MAX_DEPTH = 40  # brackets inside brackets; also bounds ast.parse's recursion

Node = tuple[Any, ...]
Type = Literal["series", "bool", "scalar", "boolscalar"]
_NAMES = {
    "series": "a number series",
    "bool": "a boolean series",
    "scalar": "a number",
    "boolscalar": "a boolean",
}
_BOOL_CONSTANTS = {"true": True, "false": False, "True": True, "False": False}
_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_CMP = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_FORBIDDEN = {
    ast.Attribute: "attributes (x.y) are not allowed",
    ast.Subscript: "subscripts (x[i]) are not allowed; use shift(x, n) for past values",
    ast.Lambda: "lambdas are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.FormattedValue: "f-strings are not allowed",
    ast.IfExp: "conditional expressions (a if c else b) are not allowed",
    ast.List: "lists are not allowed",
    ast.Tuple: "tuples are not allowed",
    ast.Set: "sets are not allowed",
    ast.Dict: "dicts are not allowed",
    ast.NamedExpr: "assignments (:=) are not allowed",
    ast.Starred: "starred arguments are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.Slice: "slices are not allowed",
}


class RuleSyntaxError(Exception):
    """A rule is invalid at ``column`` (1-based)."""

    def __init__(self, column: int, message: str) -> None:
        self.column = column
        self.message = message
        super().__init__(f"column {column}: {message}")


@dataclass(slots=True)
class Compiled:
    """A checked expression: its tree and the windows it uses (for the data-length rule)."""

    node: Node
    type: Type
    literal_windows: list[tuple[int, int]] = field(default_factory=list)  # (value, column)
    param_windows: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (min, col)
    param_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # integers
    params_used: set[str] = field(default_factory=set)


def _did_you_mean(name: str, options: list[str]) -> str:
    found = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f" (did you mean {found[0]!r}?)" if found else ""


def _check_brackets(text: str) -> None:
    depth = 0
    for i, char in enumerate(text):
        if char in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise RuleSyntaxError(i + 1, f"nested more than {MAX_DEPTH} brackets deep")
        elif char in ")]}":
            depth -= 1


def _parse(text: str) -> ast.expr:
    if len(text) > MAX_CHARS:
        raise RuleSyntaxError(
            MAX_CHARS + 1, f"a rule has at most {MAX_CHARS:,} characters, this one {len(text):,}"
        )
    if not text.strip():
        raise RuleSyntaxError(1, "the rule is empty")
    if "\x00" in text:
        raise RuleSyntaxError(text.index("\x00") + 1, "a NUL character is not allowed")
    _check_brackets(text)
    flat = text.replace("\r", " ").replace("\n", " ")  # one line: columns are offsets
    try:
        tree = ast.parse(flat, mode="eval")
    except SyntaxError as e:
        column = e.offset or 1
        raise RuleSyntaxError(column, f"invalid syntax ({e.msg})") from None
    except (RecursionError, MemoryError, ValueError):
        raise RuleSyntaxError(1, "the rule is too deeply nested") from None
    count = 0
    for node in ast.walk(tree):  # breadth-first with a queue: no recursion
        if isinstance(node, (ast.expr, ast.keyword)):
            count += 1
            if count > MAX_NODES:
                raise RuleSyntaxError(
                    _col(text, node),
                    f"a rule has at most {MAX_NODES} terms (names, numbers, operators and calls)",
                )
    return tree.body


def _col(text: str, node: ast.AST) -> int:
    offset = getattr(node, "col_offset", 0)
    prefix = text.encode("utf-8")[:offset].decode("utf-8", errors="ignore")
    return len(prefix) + 1


class _Checker:
    def __init__(self, text: str, params: Mapping[str, int | float], n_bars: int | None) -> None:
        self.text = text
        self.params = params
        self.n_bars = n_bars
        self.functions = catalogue()
        self.out = Compiled(("const", False), "boolscalar")

    def fail(self, node: ast.AST, message: str) -> RuleSyntaxError:
        return RuleSyntaxError(_col(self.text, node), message)

    def check(self, node: ast.expr) -> tuple[Node, Type]:
        match node:
            case ast.Constant(value=constant):
                if isinstance(constant, bool):
                    return ("const", constant), "boolscalar"
                if isinstance(constant, (int, float)):
                    return ("const", float(constant)), "scalar"
                what = "strings" if isinstance(constant, (str, bytes)) else f"{constant!r}"
                raise self.fail(node, f"{what} are not allowed; only numbers, names and calls")
            case ast.Name(id=name):
                return self.name(node, name)
            case ast.UnaryOp(op=op, operand=operand):
                inner, kind = self.check(operand)
                if isinstance(op, ast.Not):
                    self.expect_bool(operand, kind, "'not'")
                    return ("not", inner), kind
                if isinstance(op, (ast.USub, ast.UAdd)):
                    self.expect_number(operand, kind, "'-'")
                    return (("neg", inner) if isinstance(op, ast.USub) else inner), kind
                raise self.fail(node, "the operator ~ is not allowed; use 'not'")
            case ast.BinOp(op=op, left=left, right=right):
                symbol = _ARITH.get(type(op))
                if symbol is None:
                    raise self.fail(node, "only + - * / are allowed between numbers")
                a, ka = self.check(left)
                b, kb = self.check(right)
                self.expect_number(left, ka, f"'{symbol}'")
                self.expect_number(right, kb, f"'{symbol}'")
                result: Type = "scalar" if ka == kb == "scalar" else "series"
                return ("arith", symbol, a, b), result
            case ast.BoolOp(op=op, values=values):
                word = "and" if isinstance(op, ast.And) else "or"
                items = []
                kinds = []
                for operand_node in values:
                    item, item_kind = self.check(operand_node)
                    self.expect_bool(operand_node, item_kind, f"'{word}'")
                    items.append(item)
                    kinds.append(item_kind)
                joined: Type = "boolscalar" if all(k == "boolscalar" for k in kinds) else "bool"
                return (word, tuple(items)), joined
            case ast.Compare(left=left, ops=ops, comparators=comparators):
                return self.compare(left, ops, comparators)
            case ast.Call():
                return self.call(node)
            case _:
                message = _FORBIDDEN.get(type(node), f"{type(node).__name__} is not allowed")
                raise self.fail(node, message)

    def name(self, node: ast.AST, name: str) -> tuple[Node, Type]:
        if name in COLUMNS:
            return ("col", name), "series"
        if name in self.params:
            self.out.params_used.add(name)
            return ("param", name), "scalar"
        if name in _BOOL_CONSTANTS:
            return ("const", _BOOL_CONSTANTS[name]), "boolscalar"
        if name in self.functions:
            f = self.functions[name]
            raise self.fail(node, f"{name!r} is a function: call it, like {f.signature}")
        options = [*COLUMNS, *self.params, "true", "false"]
        known = ", ".join([*COLUMNS, *self.params])
        raise self.fail(
            node, f"unknown name {name!r}{_did_you_mean(name, options)}; names are {known}"
        )

    def compare(
        self, left: ast.expr, ops: list[ast.cmpop], comparators: list[ast.expr]
    ) -> tuple[Node, Type]:
        a, ka = self.check(left)
        self.expect_number(left, ka, "a comparison")
        parts = []
        kinds = []
        for op, right in zip(ops, comparators, strict=True):
            symbol = _CMP.get(type(op))
            if symbol is None:
                raise self.fail(right, "only < <= > >= == != compare numbers")
            b, kb = self.check(right)
            self.expect_number(right, kb, "a comparison")
            parts.append(("cmp", symbol, a, b))
            kinds.append("boolscalar" if ka == kb == "scalar" else "bool")
            a, ka = b, kb
        kind: Type = "boolscalar" if all(k == "boolscalar" for k in kinds) else "bool"
        return (parts[0] if len(parts) == 1 else ("and", tuple(parts))), kind

    def expect_number(self, node: ast.AST, kind: Type, where: str) -> None:
        if kind in ("bool", "boolscalar"):
            raise self.fail(node, f"{where} needs a number or a number series, got {_NAMES[kind]}")

    def expect_bool(self, node: ast.AST, kind: Type, where: str) -> None:
        if kind not in ("bool", "boolscalar"):
            raise self.fail(
                node, f"{where} needs a condition (a boolean series), got {_NAMES[kind]}"
            )

    def call(self, node: ast.Call) -> tuple[Node, Type]:
        if not isinstance(node.func, ast.Name):
            what = "attribute calls are" if isinstance(node.func, ast.Attribute) else "this call is"
            raise self.fail(node.func, f"{what} not allowed; call a catalogue function by name")
        name = node.func.id
        f = self.functions.get(name)
        if f is None:
            hint = _did_you_mean(name, list(self.functions))
            raise self.fail(node.func, f"unknown function {name!r}{hint} (see GET /functions)")
        bound = self.bind(node, f)
        args: list[Node] = []
        for arg, given in zip(f.args, bound, strict=True):
            args.append(self.argument(f, arg, given))
        kind: Type = "bool" if f.returns == "bool" else "series"
        return ("call", name, tuple(args)), kind

    def bind(self, node: ast.Call, f: Function) -> list[ast.expr | None]:
        names = [a.name for a in f.args]
        if len(node.args) > len(f.args):
            raise self.fail(
                node.args[len(f.args)],
                f"{f.name} takes at most {len(f.args)} arguments: {f.signature}",
            )
        bound: list[ast.expr | None] = [None] * len(f.args)
        for i, arg in enumerate(node.args):
            if isinstance(arg, ast.Starred):
                raise self.fail(arg, "starred arguments are not allowed")
            bound[i] = arg
        for kw in node.keywords:
            if kw.arg is None:
                raise self.fail(kw, "** arguments are not allowed")
            if kw.arg not in names:
                hint = _did_you_mean(kw.arg, names)
                raise self.fail(kw, f"{f.name} has no argument {kw.arg!r}{hint}: {f.signature}")
            i = names.index(kw.arg)
            if bound[i] is not None:
                raise self.fail(kw, f"argument {kw.arg!r} of {f.name} given twice")
            bound[i] = kw.value
        for i, declared in enumerate(f.args):
            if bound[i] is None and declared.default is None:
                raise self.fail(
                    node, f"{f.name} is missing its argument {declared.name!r}: {f.signature}"
                )
        return bound

    def argument(self, f: Function, arg: Arg, given: ast.expr | None) -> Node:
        if given is None:
            assert arg.default is not None
            value = arg.default if arg.kind in ("window", "integer") else float(arg.default)
            return ("const", value)
        where = f"argument {arg.name!r} of {f.name}"
        if arg.kind in ("window", "integer"):
            return self.integer(f, arg, given, where)
        node, kind = self.check(given)
        if arg.kind == "series" and kind != "series":
            raise self.fail(
                given,
                f"{where} must be a number series (like close or sma(close, 20)), "
                f"got {_NAMES[kind]}",
            )
        if arg.kind == "value":
            self.expect_number(given, kind, where)
        if arg.kind == "bool":
            self.expect_bool(given, kind, where)
        if arg.kind == "number" and kind != "scalar":
            raise self.fail(given, f"{where} must be a number, got {_NAMES[kind]}")
        return node

    def integer(self, f: Function, arg: Arg, given: ast.expr, where: str) -> Node:
        low = 1 if arg.minimum is None else int(arg.minimum)
        high = MAX_WINDOW if arg.maximum is None else int(arg.maximum)
        what = (
            "a window (a positive whole number of bars)"
            if arg.kind == "window"
            else ("a whole number")
        )
        column = _col(self.text, given)
        if isinstance(given, ast.Name) and given.id in self.params:
            value = self.params[given.id]
            if not isinstance(value, int):
                raise self.fail(
                    given, f"{where} must be {what}; parameter {given.id!r} is {value!r}"
                )
            self.out.params_used.add(given.id)
            if arg.kind == "window":
                old = self.out.param_windows.get(given.id)
                self.out.param_windows[given.id] = (max(low, old[0] if old else low), column)
            else:
                old_range = self.out.param_ranges.get(given.id, (low, high))
                self.out.param_ranges[given.id] = (max(low, old_range[0]), min(high, old_range[1]))
            self.range_check(given, where, value, low, high, f"parameter {given.id!r} = ")
            self.bars_check(given, arg, where, value, f"parameter {given.id!r} = ")
            return ("param", given.id)
        literal = given.value if isinstance(given, ast.Constant) else None
        if type(literal) is not int:
            raise self.fail(given, f"{where} must be {what}: a literal or a parameter name")
        value = literal
        self.range_check(given, where, value, low, high, "")
        self.bars_check(given, arg, where, value, "")
        if arg.kind == "window":
            self.out.literal_windows.append((value, column))
        return ("const", value)

    def range_check(
        self, node: ast.AST, where: str, value: int, low: int, high: int, prefix: str
    ) -> None:
        if value < low:
            raise self.fail(node, f"{where} must be at least {low}, got {prefix}{value}")
        if value > high:
            raise self.fail(node, f"{where} must be at most {high:,}, got {prefix}{value:,}")

    def bars_check(self, node: ast.AST, arg: Arg, where: str, value: int, prefix: str) -> None:
        if arg.kind == "window" and self.n_bars is not None and value > self.n_bars:
            raise self.fail(
                node, f"{where} is {prefix}{value:,} bars; the data has only {self.n_bars:,}"
            )


def compile_rule(
    text: str,
    params: Mapping[str, int | float],
    n_bars: int | None = None,
    *,
    want: Literal["bool"] = "bool",
) -> Compiled:
    """Parse and check one rule (a condition); :class:`RuleSyntaxError` with the column."""
    if not isinstance(text, str):
        raise RuleSyntaxError(1, f"must be a string holding an expression, got {text!r}")
    body = _parse(text)
    checker = _Checker(text, params, n_bars)
    node, kind = checker.check(body)
    if kind not in ("bool", "boolscalar"):
        raise RuleSyntaxError(
            _col(text, body),
            f"a rule must be a condition (a boolean series, like close > sma(close, 20)), "
            f"got {_NAMES[kind]}",
        )
    out = checker.out
    out.node, out.type = node, kind
    return out
