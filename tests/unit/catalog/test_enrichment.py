from worker.catalog.enrichment import Enrichment, enrich
from worker.catalog.entries import CatalogEntry

ACME = CatalogEntry(api_key_id="key-acme", customer_id="c-1", customer_name="Acme",
                    usage_plan_id="p-1", usage_plan_name="Gold")


def _lookup(key: str) -> CatalogEntry | None:
    return {"key-acme": ACME}.get(key)


def test_known_api_key_adds_customer_and_usage_plan() -> None:
    document = {"type": "access_log", "api_key_id": "key-acme"}
    assert enrich(document, _lookup) is Enrichment.ENRICHED
    assert document == {
        "type": "access_log", "api_key_id": "key-acme", "customer_id": "c-1",
        "customer_name": "Acme", "usage_plan_id": "p-1", "usage_plan_name": "Gold",
        "enriched": True,
    }


def test_unknown_api_key_is_marked_unenriched() -> None:
    document = {"type": "access_log", "api_key_id": "key-nobody"}
    assert enrich(document, _lookup) is Enrichment.UNKNOWN_KEY
    assert document["enriched"] is False and "customer_id" not in document


def test_access_log_without_key_is_unenriched() -> None:
    document = {"type": "access_log"}
    assert enrich(document, _lookup) is Enrichment.UNKNOWN_KEY
    assert document["enriched"] is False


def test_segment_event_without_key_is_left_alone() -> None:
    document = {"type": "track"}
    assert enrich(document, _lookup) is Enrichment.NOT_APPLICABLE
    assert document == {"type": "track"}
