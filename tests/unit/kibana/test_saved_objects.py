"""The saved objects against Kibana's documented format (the import API's NDJSON: `id`, `type`,
`attributes`, `references`, and the `coreMigrationVersion` / `typeMigrationVersion` that
generated objects must carry; dashboards with Lens panels by value, as Kibana's own sample
data stores them), against the fields Sluice's index template maps and the data view's runtime
fields, and against the report's panels they are generated from. No live Kibana."""

import json
import re

import orjson

from tests.support.index_template import mapped_type
from worker.config import load_settings
from worker.kibana.data_view import field
from worker.kibana.saved_objects import (
    DASHBOARD_ID,
    DATA_VIEW_ID,
    GRID_COLUMNS,
    kibana_panels,
    saved_objects,
    to_ndjson,
)
from worker.report.panels import PANELS, Kind

LENS_OPERATIONS = {"date_histogram", "terms", "range", "filters", "count", "unique_count",
                   "sum", "average", "min", "max", "median", "percentile", "formula", "math"}
XY_SERIES = {"bar", "line", "area", "bar_stacked", "area_stacked", "bar_horizontal",
             "bar_horizontal_stacked", "bar_percentage_stacked", "area_percentage_stacked",
             "bar_horizontal_percentage_stacked"}
TOP_LEVEL = {"id", "type", "attributes", "references", "coreMigrationVersion",
             "typeMigrationVersion", "managed"}


def _objects() -> list[dict]:
    ndjson = to_ndjson(saved_objects(load_settings()))
    return [orjson.loads(line) for line in ndjson.splitlines()]


def _runtime_fields() -> dict[str, dict]:
    return json.loads(_objects()[0]["attributes"]["runtimeFieldMap"])


def _panels() -> list[dict]:
    (dashboard,) = [item for item in _objects() if item["type"] == "dashboard"]
    return json.loads(dashboard["attributes"]["panelsJSON"])


def _layer(panel: dict) -> dict:
    (layer,) = panel["embeddableConfig"]["attributes"]["state"]["datasourceStates"][
        "formBased"]["layers"].values()
    return layer


def _known(name: str) -> bool:
    return mapped_type(name) is not None or name in _runtime_fields()


def test_each_line_is_a_saved_object_of_the_import_format() -> None:
    objects = _objects()
    assert [item["type"] for item in objects] == ["index-pattern", "dashboard"]
    for item in objects:
        assert set(item) == TOP_LEVEL
        assert re.fullmatch(r"\d+\.\d+\.\d+", item["coreMigrationVersion"])
        assert re.fullmatch(r"\d+\.\d+\.\d+", item["typeMigrationVersion"])
        for reference in item["references"]:
            assert set(reference) == {"id", "type", "name"}
    ids = {(item["type"], item["id"]) for item in objects}
    assert len(ids) == len(objects)
    # Every reference resolves inside the file: the import needs nothing that is not there.
    for item in objects:
        for reference in item["references"]:
            assert (reference["type"], reference["id"]) in ids, reference


def test_the_data_view_is_events_star_on_the_event_time() -> None:
    view = _objects()[0]
    assert view["id"] == DATA_VIEW_ID
    assert view["attributes"]["title"] == "events-*"
    assert mapped_type(view["attributes"]["timeFieldName"]) == "date"
    for name in ("fields", "fieldFormatMap", "runtimeFieldMap", "typeMeta"):
        json.loads(view["attributes"][name])  # serialised JSON, as Kibana stores them


def test_the_data_view_has_a_runtime_field_per_derived_column_of_the_report() -> None:
    runtime = _runtime_fields()
    assert {"endpoint", "status_class", "person", "page", "source"} <= set(runtime)
    for spec in runtime.values():
        assert set(spec) == {"type", "script"} and set(spec["script"]) == {"source"}
        assert spec["type"] in {"keyword", "long", "double", "boolean", "date"}


def test_the_dashboard_holds_its_json_attributes_as_strings() -> None:
    dashboard = _objects()[1]
    assert dashboard["id"] == DASHBOARD_ID
    attributes = dashboard["attributes"]
    assert isinstance(json.loads(attributes["panelsJSON"]), list)
    assert isinstance(json.loads(attributes["optionsJSON"]), dict)
    search = json.loads(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"])
    assert search["query"]["language"] == "kuery"
    assert attributes["timeRestore"] is True and attributes["timeFrom"].startswith("now-")


def test_every_report_panel_over_the_events_is_in_the_dashboard_and_no_other() -> None:
    in_elasticsearch = [panel for panel in PANELS if panel.table == "events"]
    assert in_elasticsearch == kibana_panels()
    assert [panel["title"] for panel in _panels()] == [panel.title for panel in in_elasticsearch]
    for panel, definition in zip(_panels(), in_elasticsearch, strict=True):
        lens = panel["embeddableConfig"]["attributes"]
        assert lens["state"]["query"] == {"query": definition.kql, "language": "kuery"}
    # Dead letters are read from the topic by the report; they are not in Elasticsearch.
    dead_letter_titles = {panel.title for panel in PANELS if panel.table == "dead_letters"}
    assert dead_letter_titles and not dead_letter_titles & {p["title"] for p in _panels()}


def test_each_panel_splits_by_the_report_fields_and_shows_its_metric() -> None:
    for panel, definition in zip(_panels(), kibana_panels(), strict=True):
        layer = _layer(panel)
        visualization = panel["embeddableConfig"]["attributes"]["state"]["visualization"]
        (data_layer,) = visualization["layers"]
        columns = layer["columns"]
        x = columns[data_layer["xAccessor"]]
        if definition.x_kind is Kind.TIME:
            assert x["operationType"] == "date_histogram" and x["sourceField"] == "timestamp"
        split = [x] if definition.x_kind is not Kind.TIME else []
        if "splitAccessor" in data_layer:
            split.append(columns[data_layer["splitAccessor"]])
        assert [column["sourceField"] for column in split] == \
            [field(name).name for name in definition.fields], definition.id
        (metric,) = [columns[accessor] for accessor in data_layer["accessors"]]
        if metric["operationType"] == "formula":
            assert metric["params"]["formula"] == definition.metric
        else:
            assert definition.metric == f"{metric['operationType']}(" + (
                "" if metric["sourceField"] == "___records___" else metric["sourceField"]) + ")"


def test_panels_fill_the_48_column_grid_without_overlapping() -> None:
    cells = set()
    for panel in _panels():
        grid = panel["gridData"]
        assert panel["panelIndex"] == grid["i"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= GRID_COLUMNS
        area = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not area & cells, panel["title"]
        cells |= area
    assert len({panel["panelIndex"] for panel in _panels()}) == len(kibana_panels())


def test_every_lens_layer_is_complete_and_referenced() -> None:
    dashboard = _objects()[1]
    dashboard_references = {reference["name"]: reference["id"]
                            for reference in dashboard["references"]}
    for panel in _panels():
        assert panel["type"] == "lens"
        lens = panel["embeddableConfig"]["attributes"]
        assert lens["type"] == "lens" and lens["visualizationType"] == "lnsXY"
        layers = lens["state"]["datasourceStates"]["formBased"]["layers"]
        for layer_id, layer in layers.items():
            name = f"indexpattern-datasource-layer-{layer_id}"
            assert {"type": "index-pattern", "id": DATA_VIEW_ID, "name": name} in \
                lens["references"]
            assert dashboard_references[f"{panel['panelIndex']}:{name}"] == DATA_VIEW_ID
            assert set(layer["columnOrder"]) == set(layer["columns"])
            for column in layer["columns"].values():
                assert column["operationType"] in LENS_OPERATIONS
                assert isinstance(column["isBucketed"], bool) and column["dataType"]
                for reference in column.get("references", []):
                    assert reference in layer["columns"]  # a formula's parts are all there
                if column["operationType"] == "terms":
                    order = column["params"]["orderBy"]
                    assert order["type"] in {"column", "alphabetical", "custom"}
                    if order["type"] == "column":
                        ranked = layer["columns"][order["columnId"]]
                        assert not ranked["isBucketed"] and "references" not in ranked
                    if order["type"] == "custom":
                        assert column["params"]["orderAgg"]["operationType"] == "count"
        visualization = lens["state"]["visualization"]
        (data_layer,) = visualization["layers"]
        assert data_layer["layerId"] in layers
        assert data_layer["seriesType"] in XY_SERIES
        assert visualization["preferredSeriesType"] == data_layer["seriesType"]
        assert visualization["curveType"] in {"LINEAR", "CURVE_MONOTONE_X", "CURVE_STEP_AFTER"}
        # What the chart draws are the layer's columns that no other column computes from.
        columns = next(iter(layers.values()))["columns"]
        parts = {reference for column in columns.values()
                 for reference in column.get("references", [])}
        accessors = {data_layer["xAccessor"], *data_layer["accessors"]} | (
            {data_layer["splitAccessor"]} if "splitAccessor" in data_layer else set())
        assert accessors == set(columns) - parts, panel["title"]


def test_every_field_a_panel_reads_is_mapped_or_a_runtime_field() -> None:
    for panel in _panels():
        for column in _layer(panel)["columns"].values():
            source = column.get("sourceField")
            if source is None or source == "___records___":
                assert column["operationType"] in {"count", "formula", "math", "filters"}
            else:
                assert _known(source), (panel["title"], source)


def test_kql_filters_name_only_mapped_or_runtime_fields() -> None:
    for panel in _panels():
        lens = panel["embeddableConfig"]["attributes"]
        queries = [lens["state"]["query"]["query"]]
        for column in _layer(panel)["columns"].values():
            queries += [item["input"]["query"]
                        for item in column.get("params", {}).get("filters", [])]
            if "filter" in column:
                queries.append(column["filter"]["query"])
        for query in queries:
            for name in re.findall(r"([a-z_.@]+)\s*(?::|>=|<=|<|>)", query):
                assert _known(name), (panel["title"], name)


def test_ids_are_stable_so_a_second_import_overwrites() -> None:
    assert to_ndjson(saved_objects(load_settings())) == to_ndjson(saved_objects(load_settings()))
