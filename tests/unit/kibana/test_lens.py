"""A report panel as Lens draws it: the chart kind's series type, the time bucket the report
fixes, rankings ordered as the report orders them."""

from dataclasses import replace

import pytest

from worker.kibana.lens import interval, lens_attributes, series_type
from worker.report.panels import SERIES, TOP, Chart, panel


def _columns(panel_id: str) -> tuple[dict, dict]:
    attributes = lens_attributes(panel(panel_id), "timestamp")
    (layer,) = attributes["state"]["datasourceStates"]["formBased"]["layers"].values()
    (data_layer,) = attributes["state"]["visualization"]["layers"]
    return layer["columns"], data_layer


@pytest.mark.parametrize(("chart", "coloured", "series"), [
    (Chart.LINE, True, "line"), (Chart.AREA, True, "area_stacked"), (Chart.AREA, False, "area"),
    (Chart.STEP, False, "area"), (Chart.BAR, False, "bar_stacked"),
    (Chart.HBAR, False, "bar_horizontal"), (Chart.HBAR, True, "bar_horizontal_stacked"),
])
def test_each_chart_kind_has_its_lens_series(chart: Chart, coloured: bool, series: str) -> None:
    assert series_type(replace(panel("sources"), chart=chart), coloured) == series


def test_a_step_chart_keeps_each_value_until_the_next() -> None:
    attributes = lens_attributes(panel("archived_per_hour"), "timestamp")
    assert attributes["state"]["visualization"]["curveType"] == "CURVE_STEP_AFTER"


def test_the_time_bucket_is_the_report_s_when_its_sql_fixes_one() -> None:
    assert interval(panel("daily_active_users")) == "1d"
    assert interval(panel("archived_per_hour")) == "1h"
    assert interval(panel("calls_by_plan")) == "auto"
    columns, data_layer = _columns("daily_active_users")
    assert columns[data_layer["xAccessor"]]["params"]["interval"] == "1d"


def test_over_time_the_colour_keeps_the_report_s_series_and_sums_the_rest() -> None:
    columns, data_layer = _columns("calls_by_customer")
    split = columns[data_layer["splitAccessor"]]
    assert split["sourceField"] == "customer_name"
    assert split["params"]["size"] == SERIES and split["params"]["otherBucket"] is True
    assert split["params"]["missingBucket"] is True  # keys not in the catalog


def test_a_ranking_keeps_the_top_values_by_the_panel_s_value() -> None:
    columns, data_layer = _columns("top_endpoints")
    x = columns[data_layer["xAccessor"]]
    assert (x["operationType"], x["sourceField"]) == ("terms", "endpoint")
    assert x["params"]["size"] == TOP and x["params"]["otherBucket"] is False
    assert x["params"]["orderBy"] == {"type": "column", "columnId": data_layer["accessors"][0]}
    assert columns[data_layer["splitAccessor"]]["sourceField"] == "usage_plan_name"


def test_a_formula_s_ranking_is_by_calls_as_in_the_report() -> None:
    columns, data_layer = _columns("error_rate_by_customer")
    x = columns[data_layer["xAccessor"]]
    assert x["params"]["orderBy"] == {"type": "custom"}
    assert x["params"]["orderAgg"]["operationType"] == "count"
    assert columns[data_layer["accessors"][0]]["operationType"] == "formula"


def test_vertical_bars_keep_their_categories_in_name_order() -> None:
    columns, data_layer = _columns("status_classes")
    x = columns[data_layer["xAccessor"]]
    assert (x["sourceField"], x["params"]["orderBy"]) == ("status_class", {"type": "alphabetical"})
    assert "splitAccessor" not in data_layer  # coloured by its own category: nothing to split


def test_a_number_on_the_category_axis_is_a_histogram() -> None:
    columns, data_layer = _columns("response_sizes")
    x = columns[data_layer["xAccessor"]]
    assert (x["operationType"], x["sourceField"]) == ("range", "response_length")
    assert x["params"]["type"] == "histogram"


def test_a_panel_with_more_fields_than_axes_is_refused() -> None:
    with pytest.raises(ValueError, match="calls_by_plan"):
        lens_attributes(replace(panel("calls_by_plan"), fields=("usage_plan", "customer")),
                        "timestamp")
