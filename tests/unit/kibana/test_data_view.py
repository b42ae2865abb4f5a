"""The data view's fields are the report's columns: document fields, or runtime fields whose
Painless is the column's, reading only fields the index template maps."""

import json
import re

import pytest

from tests.support.index_template import mapped_type
from worker.config import load_settings
from worker.kibana.data_view import (
    data_view_attributes,
    data_view_pattern,
    field,
    runtime_fields,
    time_field,
)
from worker.report.panels import COLUMNS, Column

DERIVED = [column for column in COLUMNS if column.painless is not None]


def test_the_pattern_and_time_field_follow_the_index_settings() -> None:
    assert data_view_pattern(load_settings(elasticsearch_index="logs-%Y.%m")) == "logs-*"
    stream = load_settings(elasticsearch_index="sluice-events", elasticsearch_data_stream=True)
    assert data_view_pattern(stream) == "sluice-events"
    assert time_field(stream) == "@timestamp"


def test_the_runtime_field_scripts_are_the_columns_painless() -> None:
    stored = json.loads(data_view_attributes(load_settings())["runtimeFieldMap"])
    assert stored == runtime_fields()
    assert {name: spec["script"]["source"] for name, spec in stored.items()} == {
        column.name: column.painless for column in DERIVED}
    assert stored["status_class"]["type"] == "keyword"


def test_a_runtime_field_shadows_no_mapped_field() -> None:
    # Kibana sends runtime fields as runtime_mappings, which take the place of a mapped field
    # of the same name in every search: none may share a name with the template's fields.
    for column in DERIVED:
        assert mapped_type(column.name) is None, column.name


@pytest.mark.parametrize("column", DERIVED, ids=lambda column: column.name)
def test_each_painless_script_reads_only_mapped_fields(column: Column) -> None:
    # doc['context.page.path'] reads a key of the flattened `context` field, which Painless
    # supports (Elasticsearch's flattened field type: "doc['<field>.<sub-field>'].value").
    read = re.findall(r"doc\['([^']+)'\]", column.painless or "")
    assert read, column.name
    for name in read:
        assert mapped_type(name) is not None, (column.name, name)


def test_a_plain_column_is_its_document_field_and_a_derived_one_its_runtime_field() -> None:
    customer = field("customer")
    assert (customer.name, customer.data_type, customer.runtime) == \
        ("customer_name", "string", False)
    endpoint = field("endpoint")
    assert (endpoint.name, endpoint.data_type, endpoint.runtime) == ("endpoint", "string", True)
    assert field("response_length").data_type == "number"
    for column in COLUMNS:
        if column.document is not None:
            assert mapped_type(field(column.name).name) is not None, column.name


def test_documents_the_report_names_when_missing_are_counted_in_kibana() -> None:
    # The report shows calls whose key is not in the catalog as "(not in the catalog)";
    # in Kibana they have no customer_name and fall in the missing bucket instead of nowhere.
    assert field("customer").counts_missing and field("usage_plan").counts_missing
    assert not field("event").counts_missing


def test_an_unknown_column_is_named() -> None:
    with pytest.raises(KeyError, match="no column 'nope'"):
        field("nope")
