"""Lens formulas, stored the way Lens stores them: the ``formula`` column and the columns it
computes from.

Lens keeps a formula's value in the columns it references, not in the formula text: one column
per aggregation call (``<id>X0``, ``<id>X1``, …; a ``kql='…'`` argument becomes that column's
``filter``) and, when the formula does arithmetic, one ``math`` column whose ``tinymathAst``
combines them (the next ``<id>X<n>``). The formula column's ``references`` name the one column
that holds its value. Kibana's own sample dashboards store formulas so (the flights sample's
"Delays & Cancellations": ``count(lucene=…) / count(kql='*')``); a formula column without them
draws nothing (its expression is its first reference), so all of them are written here.

A formula that is one aggregation call with no arithmetic (``count()``,
``unique_count(person)``) becomes that operation's own column instead: Lens draws it the same,
and a terms column can be ranked by it (Lens ranks by no formula).

The grammar read is the part of Lens's formula language the report's panels use: aggregation
calls (``count``, ``unique_count``, ``sum``, ``average``, ``min``, ``max``, ``median``,
``percentile``) with a field and ``kql='…'`` or ``percentile=…`` arguments, numbers,
``+ - * /`` and parentheses. Anything else raises ``FormulaError`` naming the formula.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

LensColumn = dict[str, Any]

RECORDS = "___records___"  # Lens's source field of a count of documents
OPERATIONS = frozenset({"count", "unique_count", "sum", "average", "min", "max", "median",
                        "percentile"})
_ARITHMETIC = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}
_TOKEN = re.compile(r"\s*(?:(?P<number>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_@][\w.@]*)"
                    r"|'(?P<string>(?:[^'\\]|\\.)*)'|(?P<symbol>[-+*/(),=]))")


class FormulaError(ValueError):
    """A formula this generator cannot store (a function or syntax it does not read)."""


@dataclass(frozen=True)
class Call:
    """One aggregation: ``operation(field, kql='…', percentile=95)``."""

    operation: str
    field: str | None
    kql: str | None
    percentile: float | None
    start: int
    end: int


@dataclass(frozen=True)
class Arithmetic:
    """``left <symbol> right``."""

    symbol: str
    left: Node
    right: Node
    start: int
    end: int


@dataclass(frozen=True)
class Number:
    """A constant. Every node keeps where it stands in the text (tinymath's ``location``)."""

    value: float
    start: int
    end: int


Node = Call | Arithmetic | Number


class _Tokens:
    """The formula's tokens (kind, text, start, end) and a cursor."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.items: list[tuple[str, str, int, int]] = []
        self.at = 0

    def peek(self) -> tuple[str, str, int, int] | None:
        return self.items[self.at] if self.at < len(self.items) else None

    def at_symbol(self, *symbols: str) -> bool:
        """Whether the next token is one of these symbols (not a quoted string that reads so)."""
        token = self.peek()
        return token is not None and token[0] == "symbol" and token[1] in symbols

    def take(self, symbol: str | None = None) -> tuple[str, str, int, int]:
        token = self.peek()
        if token is None or (symbol is not None and not self.at_symbol(symbol)):
            wanted = f"{symbol!r}" if symbol else "more"
            raise FormulaError(f"Lens formula {self.text!r}: expected {wanted}")
        self.at += 1
        return token


def parse(formula: str) -> Node:
    """The formula's tree; FormulaError if it is outside the grammar above."""
    tokens = _Tokens(formula)
    position = 0
    while position < len(formula.rstrip()):
        match = _TOKEN.match(formula, position)
        if match is None:
            raise FormulaError(f"Lens formula {formula!r}: cannot read {formula[position:]!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "string":
            value = value.replace("\\'", "'")
        tokens.items.append((kind, value, match.start(kind), match.end()))
        position = match.end()
    tree = _sum(tokens)
    if tokens.peek() is not None:
        raise FormulaError(f"Lens formula {formula!r}: unexpected {tokens.peek()[1]!r}")
    return tree


def _sum(tokens: _Tokens) -> Node:
    node = _product(tokens)
    while tokens.at_symbol("+", "-"):
        symbol = tokens.take()[1]
        right = _product(tokens)
        node = Arithmetic(symbol, node, right, node.start, right.end)
    return node


def _product(tokens: _Tokens) -> Node:
    node = _operand(tokens)
    while tokens.at_symbol("*", "/"):
        symbol = tokens.take()[1]
        right = _operand(tokens)
        node = Arithmetic(symbol, node, right, node.start, right.end)
    return node


def _operand(tokens: _Tokens) -> Node:
    kind, text, start, end = tokens.take()
    if kind == "number":
        return Number(float(text), start, end)
    if kind == "symbol" and text == "(":
        inner = _sum(tokens)
        tokens.take(")")
        return inner
    if kind == "name":
        return _call(tokens, text, start)
    raise FormulaError(f"Lens formula {tokens.text!r}: unexpected {text!r}")


def _call(tokens: _Tokens, operation: str, start: int) -> Call:
    if operation not in OPERATIONS:
        raise FormulaError(f"Lens formula {tokens.text!r}: {operation!r} is not one of "
                           f"{', '.join(sorted(OPERATIONS))}")
    tokens.take("(")
    source: str | None = None
    named: dict[str, str] = {}
    while tokens.peek() is not None and not tokens.at_symbol(")"):
        kind, text, _, _ = tokens.take()
        if kind == "name" and tokens.at_symbol("="):
            tokens.take("=")
            named[text] = tokens.take()[1]
        elif kind == "name" and source is None:
            source = text
        else:
            raise FormulaError(f"Lens formula {tokens.text!r}: unexpected {text!r}")
        if tokens.at_symbol(","):
            tokens.take(",")
    end = tokens.take(")")[3]
    unknown = set(named) - {"kql", "percentile"}
    if unknown or (source is None) != (operation == "count"):
        raise FormulaError(f"Lens formula {tokens.text!r}: {operation}() takes "
                           f"{'no field' if operation == 'count' else 'a field'} and kql= "
                           "or percentile= only")
    percentile = None
    if "percentile" in named:
        try:
            percentile = float(named["percentile"])
        except ValueError:
            raise FormulaError(f"Lens formula {tokens.text!r}: percentile= takes a number") \
                from None
    return Call(operation, source, named.get("kql"), percentile, start, end)


def operation_column(call: Call, label: str) -> LensColumn:
    """The Lens column of one aggregation call."""
    column: LensColumn = {
        "label": label, "customLabel": True, "dataType": "number",
        "operationType": call.operation, "isBucketed": False, "scale": "ratio",
        "sourceField": call.field or RECORDS,
    }
    if call.operation == "percentile":
        column["params"] = {"percentile": _plain(call.percentile or 95)}
    elif call.operation in ("count", "unique_count", "sum"):
        # Lens's default since 8.x: a bucket with no documents shows as no value, not zero.
        column["params"] = {"emptyAsNull": True}
    if call.kql:
        column["filter"] = {"query": call.kql, "language": "kuery"}
    return column


def metric_columns(column_id: str, formula: str, label: str) -> dict[str, LensColumn]:
    """The columns of a metric, the one holding its value first (under ``column_id``).

    One call: that operation's column. Arithmetic: the ``formula`` column, one column per
    call and the ``math`` column combining them, as Lens stores them."""
    tree = parse(formula)
    if isinstance(tree, Call):
        return {column_id: operation_column(tree, label)}
    if isinstance(tree, Number):
        raise FormulaError(f"Lens formula {formula!r}: a constant draws nothing")
    part = f"Part of {label}"
    parts: list[Call] = []
    ast = _tinymath(tree, formula, column_id, parts)
    columns: dict[str, LensColumn] = {}
    for index, call in enumerate(parts):
        helper = operation_column(call, part)
        if "emptyAsNull" in helper.get("params", {}):
            helper["params"]["emptyAsNull"] = False  # as Lens writes a formula's parts
        columns[f"{column_id}X{index}"] = helper
    math_id = f"{column_id}X{len(parts)}"
    columns[math_id] = {
        "label": part, "customLabel": True, "dataType": "number", "operationType": "math",
        "isBucketed": False, "scale": "ratio",
        "params": {"tinymathAst": ast},
        "references": list(columns),
    }
    formula_column: LensColumn = {
        "label": label, "customLabel": True, "dataType": "number", "operationType": "formula",
        "isBucketed": False, "scale": "ratio",
        "params": {"formula": formula, "isFormulaBroken": False},
        "references": [math_id],
    }
    return {column_id: formula_column, **columns}


def _tinymath(node: Node, text: str, column_id: str, parts: list[Call]) -> Any:
    """The tinymath tree Lens's math column evaluates; each call becomes the id of its column
    (``<column_id>X<n>``, numbered left to right), appended to ``parts``."""
    if isinstance(node, Call):
        parts.append(node)
        return f"{column_id}X{len(parts) - 1}"
    if isinstance(node, Number):
        return _plain(node.value)
    return {"type": "function", "name": _ARITHMETIC[node.symbol],
            "args": [_tinymath(node.left, text, column_id, parts),
                     _tinymath(node.right, text, column_id, parts)],
            "location": {"min": node.start, "max": node.end},
            "text": text[node.start:node.end]}


def _plain(number: float) -> int | float:
    """95.0 → 95: the JSON Lens writes."""
    return int(number) if number.is_integer() else number
