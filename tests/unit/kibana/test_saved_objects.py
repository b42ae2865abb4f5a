"""The saved objects against Kibana's documented format (the import API's NDJSON: `id`, `type`,
`attributes`, `references`, and the `coreMigrationVersion` / `typeMigrationVersion` that
generated objects must carry; dashboards with Lens panels by value, as Kibana's own sample
data stores them) and against the fields Sluice's index template maps. No live Kibana."""

import json
import re

import orjson

from tests.support.paths import REPO_ROOT
from worker.config import load_settings
from worker.kibana.panels import BEHAVIOUR, PANELS
from worker.kibana.saved_objects import (
    DASHBOARD_ID,
    DATA_VIEW_ID,
    GRID_COLUMNS,
    data_view_pattern,
    saved_objects,
    time_field,
    to_ndjson,
)

LENS_OPERATIONS = {"date_histogram", "terms", "filters", "count", "unique_count", "median",
                   "percentile"}
TOP_LEVEL = {"id", "type", "attributes", "references", "coreMigrationVersion",
             "typeMigrationVersion", "managed"}


def _mapped_fields() -> dict[str, str]:
    template = json.loads((REPO_ROOT / "deploy" / "elasticsearch" / "index-template.json")
                          .read_text())
    return {name: spec.get("type", "object")
            for name, spec in template["template"]["mappings"]["properties"].items()}


def _objects() -> list[dict]:
    ndjson = to_ndjson(saved_objects(load_settings()))
    return [orjson.loads(line) for line in ndjson.splitlines()]


def _panels() -> list[dict]:
    (dashboard,) = [item for item in _objects() if item["type"] == "dashboard"]
    return json.loads(dashboard["attributes"]["panelsJSON"])


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
    assert _mapped_fields()[view["attributes"]["timeFieldName"]] == "date"
    for name in ("fields", "fieldFormatMap", "runtimeFieldMap", "typeMeta"):
        json.loads(view["attributes"][name])  # serialised JSON, as Kibana stores them


def test_the_pattern_and_time_field_follow_the_index_settings() -> None:
    assert data_view_pattern(load_settings(elasticsearch_index="logs-%Y.%m")) == "logs-*"
    stream = load_settings(elasticsearch_index="sluice-events", elasticsearch_data_stream=True)
    assert data_view_pattern(stream) == "sluice-events"
    assert time_field(stream) == "@timestamp"


def test_the_dashboard_holds_its_json_attributes_as_strings() -> None:
    dashboard = _objects()[1]
    assert dashboard["id"] == DASHBOARD_ID
    attributes = dashboard["attributes"]
    assert isinstance(json.loads(attributes["panelsJSON"]), list)
    assert isinstance(json.loads(attributes["optionsJSON"]), dict)
    search = json.loads(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"])
    assert search["query"]["language"] == "kuery"
    assert attributes["timeRestore"] is True and attributes["timeFrom"].startswith("now-")


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
    assert len({panel["panelIndex"] for panel in _panels()}) == len(PANELS)


def test_every_lens_layer_is_complete_and_referenced() -> None:
    dashboard = _objects()[1]
    dashboard_references = {reference["name"]: reference["id"]
                            for reference in dashboard["references"]}
    fields = _mapped_fields()
    for panel in _panels():
        assert panel["type"] == "lens"
        lens = panel["embeddableConfig"]["attributes"]
        assert lens["type"] == "lens"
        assert lens["visualizationType"] in {"lnsXY", "lnsDatatable"}
        layers = lens["state"]["datasourceStates"]["formBased"]["layers"]
        for layer_id, layer in layers.items():
            name = f"indexpattern-datasource-layer-{layer_id}"
            assert {"type": "index-pattern", "id": DATA_VIEW_ID, "name": name} in \
                lens["references"]
            assert dashboard_references[f"{panel['panelIndex']}:{name}"] == DATA_VIEW_ID
            assert layer["columnOrder"] == list(layer["columns"])
            for column in layer["columns"].values():
                assert column["operationType"] in LENS_OPERATIONS
                assert isinstance(column["isBucketed"], bool) and column["dataType"]
                source = column.get("sourceField")
                if column["operationType"] == "count":
                    assert source == "___records___"
                elif column["operationType"] != "filters":
                    assert source in fields, (panel["title"], source)
                if column["operationType"] == "terms":
                    order = column["params"]["orderBy"]["columnId"]
                    assert not layer["columns"][order]["isBucketed"]
        visualization = lens["state"]["visualization"]
        accessors = set()
        for layer in visualization.get("layers", [visualization]):
            assert layer["layerId"] in layers
            accessors |= set(layer.get("accessors", [])) | {
                layer.get(key) for key in ("xAccessor", "splitAccessor") if layer.get(key)}
            accessors |= {column["columnId"] for column in layer.get("columns", [])}
        assert accessors == set(next(iter(layers.values()))["columns"]), panel["title"]


def test_kql_filters_name_only_mapped_fields() -> None:
    fields = _mapped_fields()
    for panel in _panels():
        lens = panel["embeddableConfig"]["attributes"]
        queries = [lens["state"]["query"]["query"]]
        for layer in lens["state"]["datasourceStates"]["formBased"]["layers"].values():
            for column in layer["columns"].values():
                queries += [item["input"]["query"]
                            for item in column.get("params", {}).get("filters", [])]
        for query in queries:
            for field in re.findall(r"([a-z_]+)\s*(?::|>=|<=|<|>)", query):
                assert field in fields, (panel["title"], field)


def test_the_dashboard_has_the_seeds_panels() -> None:
    titles = " | ".join(panel["title"] for panel in _panels()).lower()
    for words in ("usage plan", "by customer", "top customers", "top endpoints",
                  "status classes", "error rate by customer", "not in the catalog",
                  "response sizes", "events over time by type", "top events",
                  "daily active users", "top pages", "by source"):
        assert words in titles, words
    assert {panel.seed for panel in PANELS} == {"000", "003"}
    assert all(panel.seed == "000" for panel in BEHAVIOUR)


def test_ids_are_stable_so_a_second_import_overwrites() -> None:
    assert to_ndjson(saved_objects(load_settings())) == to_ndjson(saved_objects(load_settings()))
