from pathlib import Path

import orjson
import pytest

from worker.catalog.entries import CatalogEntry, CatalogFileError, read_catalog_file


def test_json_list_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text('[{"api_key_id": "k1", "customer_name": "Acme", "usage_plan_name": "Gold"}]')
    assert read_catalog_file(path) == [
        CatalogEntry(api_key_id="k1", customer_name="Acme", usage_plan_name="Gold")
    ]


def test_entries_object_and_ndjson_files_are_read(tmp_path: Path) -> None:
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text('{"entries": [{"api_key_id": "k1"}]}')
    lines = tmp_path / "lines.json"
    lines.write_text('{"api_key_id": "k1"}\n\n{"api_key_id": "k2"}\n')
    assert [e.api_key_id for e in read_catalog_file(wrapped)] == ["k1"]
    assert [e.api_key_id for e in read_catalog_file(lines)] == ["k1", "k2"]


def test_csv_file_with_header_is_read_and_empty_cells_are_none(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text("api_key_id,customer_id,customer_name\nk1,c1,Acme\nk2,,\n")
    entries = read_catalog_file(path)
    assert entries[1] == CatalogEntry(api_key_id="k2")
    assert entries[0].customer_name == "Acme"


def test_entry_without_key_id_names_the_file_and_entry(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text("api_key_id,customer_id\nk1,c1\n,c2\n")
    with pytest.raises(CatalogFileError, match=r"catalog.csv: entry 3: api_key_id"):
        read_catalog_file(path)


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text("this is not json")
    with pytest.raises(CatalogFileError, match="neither JSON nor one JSON object per line"):
        read_catalog_file(path)


def test_topic_value_round_trips_and_the_record_key_wins() -> None:
    entry = CatalogEntry(api_key_id="k1", customer_id="c1", usage_plan_id="p1")
    value = entry.value_bytes()
    assert orjson.loads(value)["customer_id"] == "c1"
    assert CatalogEntry.from_topic(b"k9", value) == entry.model_copy(update={"api_key_id": "k9"})
