"""Lens formulas stored as Lens stores them (as in Kibana's own flights sample dashboard):
the formula column references a math column over one column per aggregation call."""

import pytest

from worker.kibana.formula import FormulaError, metric_columns, parse
from worker.report.panels import PANELS


def test_a_ratio_is_a_formula_over_its_parts_and_a_math_column() -> None:
    columns = metric_columns("m", "count(kql='status >= 400') / count()", "error rate")
    assert list(columns) == ["m", "mX0", "mX1", "mX2"]
    formula = columns["m"]
    assert formula["operationType"] == "formula"
    assert formula["params"] == {"formula": "count(kql='status >= 400') / count()",
                                 "isFormulaBroken": False}
    assert formula["references"] == ["mX2"]
    errors, calls = columns["mX0"], columns["mX1"]
    assert errors["operationType"] == calls["operationType"] == "count"
    assert errors["sourceField"] == "___records___"
    assert errors["filter"] == {"query": "status >= 400", "language": "kuery"}
    assert "filter" not in calls
    math = columns["mX2"]
    assert math["operationType"] == "math" and math["references"] == ["mX0", "mX1"]
    ast = math["params"]["tinymathAst"]
    assert (ast["type"], ast["name"], ast["args"]) == ("function", "divide", ["mX0", "mX1"])
    assert ast["text"] == "count(kql='status >= 400') / count()"
    assert ast["location"] == {"min": 0, "max": len(ast["text"])}


def test_one_call_is_that_operation_s_own_column() -> None:
    (column,) = metric_columns("m", "unique_count(person)", "users").values()
    assert (column["operationType"], column["sourceField"]) == ("unique_count", "person")
    (column,) = metric_columns("m", "count()", "events").values()
    assert (column["operationType"], column["sourceField"]) == ("count", "___records___")
    (column,) = metric_columns("m", "percentile(response_length, percentile=95)", "p95").values()
    assert column["params"] == {"percentile": 95}


def test_arithmetic_follows_precedence_and_parentheses() -> None:
    columns = metric_columns("m", "(count() + 2) * sum(response_length) - 1", "x")
    ast = columns["mX2"]["params"]["tinymathAst"]
    assert ast["name"] == "subtract" and ast["args"][1] == 1
    multiply = ast["args"][0]
    assert multiply["name"] == "multiply" and multiply["args"][1] == "mX1"
    assert multiply["args"][0]["name"] == "add" and multiply["args"][0]["args"] == ["mX0", 2]


@pytest.mark.parametrize(("formula", "says"), [
    ("moving_average(count())", "not one of"),
    ("count(", "expected ')'"),
    ("count() +", "expected more"),
    ("unique_count()", "takes a field"),
    ("count(kql='a', shift='1w')", "kql= or percentile= only"),
    ("42", "constant"),
    ("percentile(response_length, percentile='high')", "takes a number"),
])
def test_a_formula_outside_the_grammar_is_named(formula: str, says: str) -> None:
    with pytest.raises(FormulaError) as error:
        metric_columns("m", formula, "x")
    assert says in str(error.value) and repr(formula) in str(error.value)


def test_a_quoted_argument_is_text_even_when_it_reads_as_a_symbol() -> None:
    (column,) = metric_columns("m", r"count(kql='name : \'a)\'')", "x").values()
    assert column["filter"]["query"] == "name : 'a)'"


@pytest.mark.parametrize("panel", PANELS, ids=lambda panel: panel.id)
def test_every_report_metric_is_read(panel) -> None:  # noqa: ANN001
    parse(panel.metric)
