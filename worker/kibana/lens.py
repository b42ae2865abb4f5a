"""A report panel as a Lens visualization (stored by value in the dashboard).

One ``formBased`` layer of the data view per panel, drawn by ``lnsXY``:

* the x axis: a date histogram on the data view's time field when the report draws time on x
  (its bucket fixed when the report's SQL fixes it, ``time_bucket(INTERVAL 1 DAY, …)`` → ``1d``,
  else Kibana's ``auto``), otherwise the panel's first field: its top values (terms), or a
  histogram for a number (``response_length``: the report's size classes are SQL);
* the colour (Lens's breakdown, ``splitAccessor``): the next field, its top values, the rest
  summed as "Other" as the report sums them as ``(other)``;
* the value: the panel's Lens formula (``worker.kibana.formula``).

The report's chart kinds map to Lens series: ``line`` → line, ``area`` → area (stacked by
colour, as Vega-Lite stacks it, with the same monotone curve), ``step`` → area with Lens's
step curve, ``bar`` → bar_stacked with its categories in name order, ``hbar`` →
bar_horizontal (bar_horizontal_stacked when coloured) ranked by the value. Rankings keep the
report's ``TOP`` values, colours its ``SERIES``.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from worker.kibana.data_view import DATA_VIEW_ID, Field, field
from worker.kibana.formula import RECORDS, LensColumn, metric_columns
from worker.report.panels import SERIES, TOP, Chart, Kind, Panel

_IDS = uuid.UUID("5e1c1d3a-6b2f-4f29-9c0e-29a1b0c0ffee")  # namespace of the derived ids
_FIXED_BUCKET = re.compile(r"time_bucket\(\s*INTERVAL\s+(\d+)\s+(MINUTE|HOUR|DAY|WEEK)\b",
                           re.IGNORECASE)
_UNITS = {"MINUTE": "m", "HOUR": "h", "DAY": "d", "WEEK": "w"}
_CURVES = {Chart.AREA: "CURVE_MONOTONE_X", Chart.STEP: "CURVE_STEP_AFTER"}


def stable_id(key: str, role: str) -> str:
    """An id derived from a panel's id and its role, the same on every generation (so that an
    import with ``overwrite`` replaces instead of adding)."""
    return str(uuid.uuid5(_IDS, f"{key}:{role}"))


def layer_reference(layer_id: str) -> dict[str, str]:
    """How a Lens layer names its data view, in the visualization's ``references``."""
    return {"type": "index-pattern", "id": DATA_VIEW_ID,
            "name": f"indexpattern-datasource-layer-{layer_id}"}


def interval(panel: Panel) -> str:
    """The date histogram's interval: the report's fixed bucket, else ``auto``."""
    match = _FIXED_BUCKET.search(panel.sql)
    return f"{match.group(1)}{_UNITS[match.group(2).upper()]}" if match else "auto"


def series_type(panel: Panel, coloured: bool) -> str:
    """The Lens XY series type of the report's chart kind."""
    if panel.chart is Chart.LINE:
        return "line"
    if panel.chart is Chart.AREA:
        return "area_stacked" if coloured else "area"
    if panel.chart is Chart.STEP:
        return "area"
    if panel.chart is Chart.BAR:
        return "bar_stacked"
    return "bar_horizontal_stacked" if coloured else "bar_horizontal"


def lens_attributes(panel: Panel, time_field: str) -> dict[str, Any]:
    """The Lens visualization of one report panel, as a dashboard stores it by value."""
    layer = stable_id(panel.id, "layer")
    category, value = (panel.y, panel.x) if panel.chart is Chart.HBAR else (panel.x, panel.y)
    over_time = panel.x_kind is Kind.TIME
    fields = list(panel.fields)
    if len(fields) > (1 if over_time else 2) or (not over_time and not fields):
        raise ValueError(f"panel {panel.id!r}: a Lens chart has one x axis and one colour; "
                         f"fields {panel.fields} do not fit")
    metric_id = stable_id(panel.id, "metric")
    metrics = metric_columns(metric_id, panel.metric, _label(value))
    rank = _ranking(metric_id, metrics[metric_id])
    x_id = stable_id(panel.id, "x")
    if over_time:
        x_column = _date_histogram(time_field, _label(panel.x), interval(panel))
    else:
        order = {"orderBy": {"type": "alphabetical"}, "orderDirection": "asc"} \
            if panel.chart is Chart.BAR else rank
        x_column = _category(field(fields.pop(0)), _label(category), TOP, order, other=False)
    columns: dict[str, LensColumn] = {x_id: x_column}
    split_id = None
    if fields:
        split_id = stable_id(panel.id, "breakdown")
        colour = panel.colour if panel.colour and panel.colour != "series" else fields[0]
        columns[split_id] = _category(field(fields[0]), _label(colour), SERIES, rank,
                                      other=True)
    columns.update(metrics)
    return {
        "title": panel.title,
        "description": panel.description,
        "visualizationType": "lnsXY",
        "type": "lens",
        "references": [layer_reference(layer)],
        "state": {
            "visualization": _xy(panel, layer, x_id, split_id, metric_id),
            "query": {"query": panel.kql, "language": "kuery"},
            "filters": [],
            "datasourceStates": {"formBased": {"layers": {layer: {
                "columns": columns, "columnOrder": list(columns), "incompleteColumns": {}}}}},
            "internalReferences": [],
            "adHocDataViews": {},
        },
    }


def _xy(panel: Panel, layer: str, x_id: str, split_id: str | None,
        metric_id: str) -> dict[str, Any]:
    series = series_type(panel, split_id is not None)
    data_layer: dict[str, Any] = {"layerId": layer, "layerType": "data", "seriesType": series,
                                  "xAccessor": x_id, "accessors": [metric_id]}
    if split_id:
        data_layer["splitAccessor"] = split_id
        data_layer["palette"] = {"type": "palette", "name": "default"}
    return {"legend": {"isVisible": split_id is not None, "position": "right"},
            "valueLabels": "hide", "curveType": _CURVES.get(panel.chart, "LINEAR"),
            "preferredSeriesType": series, "layers": [data_layer]}


def _ranking(metric_id: str, metric: LensColumn) -> dict[str, Any]:
    """Top values ranked by the panel's value; Lens ranks by no formula, so a formula's panel
    ranks by the count of documents (as the report ranks its error rates by calls)."""
    if metric["operationType"] != "formula":
        return {"orderBy": {"type": "column", "columnId": metric_id},
                "orderDirection": "desc"}
    return {"orderBy": {"type": "custom"}, "orderDirection": "desc",
            "orderAgg": {"label": "Count of records", "dataType": "number",
                         "operationType": "count", "sourceField": RECORDS,
                         "isBucketed": False, "scale": "ratio"}}


def _date_histogram(time_field: str, label: str, every: str) -> LensColumn:
    return {"label": label, "customLabel": True, "dataType": "date",
            "operationType": "date_histogram", "sourceField": time_field, "isBucketed": True,
            "scale": "interval",
            "params": {"interval": every, "includeEmptyRows": True, "dropPartials": False}}


def _category(source: Field, label: str, size: int, order: dict[str, Any],
              other: bool) -> LensColumn:
    if source.data_type == "number":
        # Top values of a size or a duration are single values: group them in ranges instead.
        return {"label": label, "customLabel": True, "dataType": "number",
                "operationType": "range", "sourceField": source.name, "isBucketed": True,
                "scale": "interval",
                "params": {"type": "histogram", "maxBars": "auto", "includeEmptyRows": False,
                           "ranges": [{"from": 0, "to": 1000, "label": ""}]}}
    return {"label": label, "customLabel": True, "dataType": source.data_type,
            "operationType": "terms", "sourceField": source.name, "isBucketed": True,
            "scale": "ordinal",
            "params": {"size": size, **order, "otherBucket": other,
                       "missingBucket": source.counts_missing,
                       "parentFormat": {"id": "terms"}}}


def _label(name: str) -> str:
    return name.replace("_", " ")
