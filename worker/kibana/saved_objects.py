"""Kibana saved objects generated from the report's panels: the data view and one dashboard,
as NDJSON.

The dashboard's panels are the report's (``worker.report.panels.PANELS``): each panel that
reads the ``events`` table is a Lens visualization of the same filter, fields and value
(``worker.kibana.lens``), over the ``events-*`` data view whose runtime fields are the report's
derived columns (``worker.kibana.data_view``). The panels that read the dead-letter topic
(``table="dead_letters"``) are left out: dead letters are not in Elasticsearch.

The format is the one Kibana's saved-objects export writes and its import API reads (one JSON
object per line: ``id``, ``type``, ``attributes``, ``references``, ``coreMigrationVersion``,
``typeMigrationVersion``): a data view (type ``index-pattern``) and a dashboard whose panels
are Lens visualizations stored by value in its ``panelsJSON``, each layer referring to the data
view through the dashboard's ``references`` (``<panelIndex>:indexpattern-datasource-layer-
<layer id>``). The migration versions are those of the objects Kibana 8.11+ ships for its own
sample data: an import into a newer Kibana (the compose file runs 9.1) migrates them from
there. Ids are derived from the panels' ids, so importing again with ``overwrite`` replaces
the objects instead of adding copies.

Not imported into a live Kibana by the tests (Kibana cannot run here): the tests check this
structure against the documented format, the index template's fields and the report's panels.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from worker.config import Settings
from worker.kibana.data_view import DATA_VIEW_ID, data_view_attributes, time_field
from worker.kibana.lens import lens_attributes, stable_id
from worker.report.panels import PANELS, Panel

DASHBOARD_ID = "sluice-api-usage-and-behaviour"
CORE_MIGRATION_VERSION = "8.8.0"
TYPE_MIGRATION_VERSIONS = {"index-pattern": "7.11.0", "dashboard": "8.7.0"}
PANEL_VERSION = "8.11.0"
GRID_COLUMNS = 48  # a Kibana dashboard's grid is 48 columns wide
IN_ELASTICSEARCH = "events"  # the report's table whose rows are Elasticsearch documents

SavedObject = dict[str, Any]


def kibana_panels(panels: Iterable[Panel] = PANELS) -> list[Panel]:
    """The report's panels Kibana can draw: those over the events Elasticsearch holds."""
    return [panel for panel in panels if panel.table == IN_ELASTICSEARCH]


def saved_objects(settings: Settings, panels: Iterable[Panel] = PANELS) -> list[SavedObject]:
    """The data view, then the dashboard (the order Kibana resolves references in)."""
    return [data_view(settings), dashboard(settings, kibana_panels(panels))]


def to_ndjson(objects: Iterable[SavedObject]) -> bytes:
    """One object per line, as the import API takes it."""
    return b"".join(orjson.dumps(item) + b"\n" for item in objects)


def data_view(settings: Settings) -> SavedObject:
    """The ``events-*`` data view with the report's derived columns as runtime fields."""
    return _saved("index-pattern", DATA_VIEW_ID, data_view_attributes(settings), [])


def dashboard(settings: Settings, panels: list[Panel]) -> SavedObject:
    """One dashboard of the panels in the report's order (API usage, behaviour, pipeline), two
    a row."""
    embedded, references = [], []
    for panel in panels:
        panel_index = stable_id(panel.id, "panel")
        attributes = lens_attributes(panel, time_field(settings))
        embedded.append({
            "version": PANEL_VERSION,
            "type": "lens",
            "gridData": {"x": 0, "y": 0, "w": GRID_COLUMNS // 2, "h": 15,
                         "i": panel_index},  # packed below
            "panelIndex": panel_index,
            "embeddableConfig": {"attributes": attributes, "enhancements": {}},
            "title": panel.title,
        })
        references.extend({**reference, "name": f"{panel_index}:{reference['name']}"}
                          for reference in attributes["references"])
    _pack_rows(embedded)
    return _saved("dashboard", DASHBOARD_ID, {
        "title": "Sluice: API usage and behaviour",
        "description": "API usage by customer, usage plan and endpoint (seed 003), product "
                       "behaviour (seed 000) and events per hour, from the events Sluice "
                       "indexes: the panels of `sluice report`.",
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
