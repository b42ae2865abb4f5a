"""Kibana saved objects from the panel records: the data view and one dashboard, as NDJSON.

The format is the one Kibana's saved-objects export writes and its import API reads (one JSON
object per line: ``id``, ``type``, ``attributes``, ``references``, ``coreMigrationVersion``,
``typeMigrationVersion``): a data view (type ``index-pattern``) and a dashboard whose panels
are Lens visualizations stored by value in its ``panelsJSON``, each layer referring to the data
view through the dashboard's ``references`` (``<panelIndex>:indexpattern-datasource-layer-
<layer id>``). The migration versions are those of the objects Kibana 8.11+ ships for its own
sample data: an import into a newer Kibana (the compose file runs 9.1) migrates them from
there. Ids are derived from the panels' keys, so importing again with ``overwrite`` replaces
the objects instead of adding copies.

Not imported into a live Kibana by the tests (Kibana cannot run here): the tests check this
structure against the documented format and the index template's fields.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import orjson

from worker.config import Settings
from worker.kibana.panels import PANELS, Buckets, Metric, Panel

DATA_VIEW_ID = "sluice-events"
DASHBOARD_ID = "sluice-api-usage-and-behaviour"
CORE_MIGRATION_VERSION = "8.8.0"
TYPE_MIGRATION_VERSIONS = {"index-pattern": "7.11.0", "dashboard": "8.7.0"}
PANEL_VERSION = "8.11.0"
GRID_COLUMNS = 48  # a Kibana dashboard's grid is 48 columns wide
_IDS = uuid.UUID("5e1c1d3a-6b2f-4f29-9c0e-29a1b0c0ffee")  # namespace of the derived ids

LensColumn = dict[str, Any]
SavedObject = dict[str, Any]


def data_view_pattern(settings: Settings) -> str:
    """The data view's index pattern: ``events-%Y.%m.%d`` → ``events-*``; a fixed index or
    data stream name as it is."""
    index = settings.elasticsearch_index
    return index.split("%", 1)[0] + "*" if "%" in index else index


def time_field(settings: Settings) -> str:
    """``@timestamp`` in a data stream (Sluice adds it there), else the event's ``timestamp``."""
    return "@timestamp" if settings.elasticsearch_data_stream else "timestamp"


def saved_objects(settings: Settings, panels: Iterable[Panel] = PANELS) -> list[SavedObject]:
    """The data view, then the dashboard (the order Kibana resolves references in)."""
    return [data_view(settings), dashboard(settings, list(panels))]


def to_ndjson(objects: Iterable[SavedObject]) -> bytes:
    """One object per line, as the import API takes it."""
    return b"".join(orjson.dumps(item) + b"\n" for item in objects)


def data_view(settings: Settings) -> SavedObject:
    """The ``events-*`` data view, its time field the events' time."""
    return _saved("index-pattern", DATA_VIEW_ID, {
        "title": data_view_pattern(settings),
        "name": "Sluice events",
        "timeFieldName": time_field(settings),
        "fields": "[]",  # Kibana reads the fields from the indices
        "fieldFormatMap": "{}",
        "runtimeFieldMap": "{}",
        "typeMeta": "{}",
    }, [])


def dashboard(settings: Settings, panels: list[Panel]) -> SavedObject:
    """One dashboard: seed 003's API usage first, then seed 000's behaviour, two a row."""
    embedded, references = [], []
    for panel in sorted(panels, key=lambda p: p.seed, reverse=True):
        panel_index = _id(panel.key, "panel")
        attributes = lens_attributes(panel, time_field(settings))
        width = GRID_COLUMNS if panel.chart == "table" and panel.breakdown else GRID_COLUMNS // 2
        embedded.append({
            "version": PANEL_VERSION,
            "type": "lens",
            "gridData": {"x": 0, "y": 0, "w": width, "h": 15, "i": panel_index},  # packed below
            "panelIndex": panel_index,
            "embeddableConfig": {"attributes": attributes, "enhancements": {}},
            "title": panel.title,
        })
        references.extend({**reference, "name": f"{panel_index}:{reference['name']}"}
                          for reference in attributes["references"])
    _pack_rows(embedded)
    return _saved("dashboard", DASHBOARD_ID, {
        "title": "Sluice: API usage and behaviour",
        "description": "API usage by customer, usage plan and endpoint (seed 003) and product "
                       "behaviour (seed 000), from the events Sluice indexes.",
        "panelsJSON": orjson.dumps(embedded).decode(),
        "optionsJSON": orjson.dumps({"useMargins": True, "syncColors": False,
                                     "syncCursor": True, "syncTooltips": False,
                                     "hidePanelTitles": False}).decode(),
        "timeRestore": True,
        "timeFrom": "now-7d",
        "timeTo": "now",
        "refreshInterval": {"pause": True, "value": 60000},
        "kibanaSavedObjectMeta": {"searchSourceJSON": orjson.dumps(
            {"query": {"query": "", "language": "kuery"}, "filter": []}).decode()},
        "version": 1,
    }, references)


def lens_attributes(panel: Panel, time: str) -> dict[str, Any]:
    """A Lens visualization (by value) of one panel: one layer of the data view."""
    layer = _id(panel.key, "layer")
    metrics = {_id(panel.key, f"metric-{i}"): metric for i, metric in enumerate(panel.metrics)}
    first_metric = next(iter(metrics))
    x_id = _id(panel.key, "x")
    columns: dict[str, LensColumn] = {x_id: _bucket_column(panel.x, time, first_metric)}
    split_id = None
    if panel.breakdown is not None:
        split_id = _id(panel.key, "breakdown")
        columns[split_id] = _bucket_column(panel.breakdown, time, first_metric)
    columns.update({column_id: _metric_column(metric) for column_id, metric in metrics.items()})
    return {
        "title": panel.title,
        "description": f"seed {panel.seed}",
        "visualizationType": "lnsDatatable" if panel.chart == "table" else "lnsXY",
        "type": "lens",
        "references": [{"type": "index-pattern", "id": DATA_VIEW_ID,
                        "name": f"indexpattern-datasource-layer-{layer}"}],
        "state": {
            "visualization": _visualization(panel, layer, x_id, split_id, list(metrics)),
            "query": {"query": panel.filter, "language": "kuery"},
            "filters": [],
            "datasourceStates": {"formBased": {"layers": {layer: {
                "columns": columns, "columnOrder": list(columns), "incompleteColumns": {}}}}},
            "internalReferences": [],
            "adHocDataViews": {},
        },
    }


def _visualization(panel: Panel, layer: str, x_id: str, split_id: str | None,
                   metric_ids: list[str]) -> dict[str, Any]:
    if panel.chart == "table":
        return {"layerId": layer, "layerType": "data",
                "columns": [{"columnId": column} for column in
                            [x_id, *([split_id] if split_id else []), *metric_ids]]}
    series = {"bar_stacked": "bar_stacked", "line": "line", "bar_horizontal": "bar_horizontal",
              "bar_horizontal_percentage": "bar_horizontal_percentage_stacked"}[panel.chart]
    data_layer: dict[str, Any] = {"layerId": layer, "layerType": "data", "seriesType": series,
                                  "xAccessor": x_id, "accessors": metric_ids}
    if split_id:
        data_layer["splitAccessor"] = split_id
    return {"legend": {"isVisible": True, "position": "right"}, "valueLabels": "hide",
            "preferredSeriesType": series, "layers": [data_layer]}


def _bucket_column(buckets: Buckets, time: str, order_by: str) -> LensColumn:
    if buckets.kind == "date_histogram":
        return {"label": buckets.label or time, "customLabel": bool(buckets.label),
                "dataType": "date", "operationType": "date_histogram", "sourceField": time,
                "isBucketed": True, "scale": "interval",
                "params": {"interval": buckets.interval, "includeEmptyRows": True,
                           "dropPartials": False}}
    if buckets.kind == "terms":
        return {"label": buckets.label or str(buckets.field), "customLabel": bool(buckets.label),
                "dataType": "string", "operationType": "terms", "sourceField": buckets.field,
                "isBucketed": True, "scale": "ordinal",
                "params": {"size": buckets.size, "orderBy": {"type": "column",
                                                             "columnId": order_by},
                           "orderDirection": "desc", "otherBucket": True,
                           "missingBucket": False, "parentFormat": {"id": "terms"}}}
    return {"label": buckets.label or "Filters", "customLabel": bool(buckets.label),
            "dataType": "string", "operationType": "filters", "isBucketed": True,
            "scale": "ordinal",
            "params": {"filters": [{"input": {"query": query, "language": "kuery"},
                                    "label": label} for label, query in buckets.filters]}}


def _metric_column(metric: Metric) -> LensColumn:
    column: LensColumn = {"label": metric.label, "customLabel": True, "dataType": "number",
                          "operationType": metric.operation, "isBucketed": False,
                          "scale": "ratio",
                          "sourceField": metric.field if metric.field else "___records___"}
    if metric.operation == "percentile":
        column["params"] = {"percentile": metric.percentile}
    elif metric.operation == "count":
        column["params"] = {"emptyAsNull": True}
    return column


def _pack_rows(panels: list[dict[str, Any]]) -> None:
    """Place panels left to right, top to bottom, in the grid's 48 columns."""
    x = y = row_height = 0
    for panel in panels:
        grid = panel["gridData"]
        if x + grid["w"] > GRID_COLUMNS:
            x, y, row_height = 0, y + row_height, 0
        grid["x"], grid["y"] = x, y
        x += grid["w"]
        row_height = max(row_height, grid["h"])


def _saved(kind: str, object_id: str, attributes: dict[str, Any],
           references: list[dict[str, str]]) -> SavedObject:
    return {"id": object_id, "type": kind, "attributes": attributes, "references": references,
            "managed": False, "coreMigrationVersion": CORE_MIGRATION_VERSION,
            "typeMigrationVersion": TYPE_MIGRATION_VERSIONS[kind]}


def _id(key: str, role: str) -> str:
    return str(uuid.uuid5(_IDS, f"{key}:{role}"))
