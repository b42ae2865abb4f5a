import base64
import hashlib
from pathlib import Path

from prometheus_client import generate_latest

from tests.support.status_pages import exposition_values, page_values, parse_page
from worker.app import SluiceApp, create_app
from worker.config import load_settings
from worker.ingest.metrics import IngestMetrics
from worker.ops.status_page import CONTENT_SECURITY_POLICY, StatusPage


def _worker(tmp_path: Path, **settings: object) -> SluiceApp:
    app = create_app(load_settings(sinks=["elasticsearch", "s3"], web_port=6066,
                                   state_dir=tmp_path / "state", **settings))
    assert app.ops is not None and app.ops.page is not None
    return app


def _busy(app: SluiceApp) -> None:
    """State as a worker that has consumed a while would have it."""
    app.pipeline.acks.assign([("events", 0), ("events", 1)])
    app.pipeline.progress.add("records", 120)
    app.pipeline.progress.add("events", 118)
    app.pipeline.progress.add("delivered.s3", 100)
    app.pipeline.dead_letter_counts[("decode", "InvalidJson")] += 2


def test_every_value_on_the_worker_page_is_what_metrics_says(tmp_path: Path) -> None:
    app = _worker(tmp_path)
    _busy(app)
    assert app.ops is not None and app.ops.page is not None
    html = app.ops.page.render(app.ops.registry, {})
    scraped = exposition_values(generate_latest(app.ops.registry).decode())
    shown = page_values(html)
    assert shown, "no value cell on the page"
    for key, value in shown.items():
        assert scraped[key] == value, key
    # What the page is for: partitions, throughput per sink, dead letters, S3, Elasticsearch.
    names = {name for name, _ in shown}
    assert {"sluice_partition_assigned", "sluice_events_delivered_total",
            "sluice_dead_letters_total", "sluice_s3_open_parts", "sluice_s3_hour_parts_waiting",
            "sluice_elasticsearch_documents_held", "sluice_records_in_flight"} <= names
    assert shown[("sluice_dead_letters_total",
                  (("error_class", "InvalidJson"), ("stage", "decode")))] == 2
    assert "Partitions owned: 2" in html


def test_the_worker_page_names_no_secret(tmp_path: Path) -> None:
    secrets = {"elasticsearch_url": "http://elastic:url-secret@127.0.0.1:9200",
               "elasticsearch_username": "elastic", "elasticsearch_password": "es-secret",
               "aws_access_key_id": "AKIDSECRET", "aws_secret_access_key": "aws-secret",
               "kafka_sasl_mechanism": "PLAIN", "kafka_security_protocol": "SASL_PLAINTEXT",
               "kafka_sasl_username": "sluice", "kafka_sasl_password": "kafka-secret"}
    app = _worker(tmp_path, **secrets)
    _busy(app)
    assert app.ops is not None and app.ops.page is not None
    html = app.ops.page.render(app.ops.registry, {"catalog": "the catalog reader failed"})
    for secret in ("url-secret", "es-secret", "AKIDSECRET", "aws-secret", "kafka-secret"):
        assert secret not in html


def test_readiness_reasons_are_listed_and_escaped(tmp_path: Path) -> None:
    app = _worker(tmp_path)
    assert app.ops is not None and app.ops.page is not None
    html = app.ops.page.render(app.ops.registry, {
        "sink.s3": "S3 refused to upload: <InvalidStorageClass> check SLUICE_S3_STORAGE_CLASS",
        "assignment": "no source partition assigned (yet)"})
    assert 'data-ready="false"' in html
    assert "&lt;InvalidStorageClass&gt;" in html and "<InvalidStorageClass>" not in html
    assert 'data-check="sink.s3"' in html and 'data-check="assignment"' in html
    ready = app.ops.page.render(app.ops.registry, {})
    assert 'data-ready="true"' in ready and "Why it is not ready" not in ready


def test_the_page_loads_nothing_from_elsewhere(tmp_path: Path) -> None:
    app = _worker(tmp_path)
    assert app.ops is not None and app.ops.page is not None
    html = app.ops.page.render(app.ops.registry, {})
    page = parse_page(html)
    assert {target for _, target in page.links} <= {"/metrics", "/health/ready"}
    assert "url(" not in html and "@import" not in html
    assert "http://" not in html and "https://" not in html
    # The one inline script is the one the Content-Security-Policy allows, and nothing else is.
    (script,) = page.scripts
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY


def test_a_fragment_is_only_the_main_element(tmp_path: Path) -> None:
    app = _worker(tmp_path)
    assert app.ops is not None and app.ops.page is not None
    fragment = app.ops.page.render(app.ops.registry, {}, fragment=True)
    assert fragment.startswith("<main ") and fragment.endswith("</main>")


def test_the_worker_page_without_s3_or_elasticsearch_leaves_their_tables_out(
        tmp_path: Path) -> None:
    app = create_app(load_settings(sinks=["counting"], web_port=6066,
                                   state_dir=tmp_path / "state"))
    assert app.ops is not None and app.ops.page is not None
    html = app.ops.page.render(app.ops.registry, {})
    assert "<h2>S3</h2>" not in html and "<h2>Elasticsearch</h2>" not in html
    assert "delivered by counting" in html


def test_the_ingest_page_shows_requests_by_form_and_status_and_the_broker() -> None:
    metrics = IngestMetrics(lambda: True)
    metrics.answered("segment", 200, 3, 120, 0.01)
    metrics.answered("segment", 200, 1, 40, 0.01)
    metrics.answered("firehose", 503, 0, 500, 5.0)
    page = StatusPage("ingest")
    html = page.render(metrics.registry, {})
    shown = page_values(html)
    scraped = exposition_values(generate_latest(metrics.registry).decode())
    for key, value in shown.items():
        assert scraped[key] == value, key
    assert shown[("sluice_ingest_requests_total", (("form", "segment"), ("status", "200")))] == 2
    assert shown[("sluice_ingest_requests_total", (("form", "firehose"), ("status", "503")))] == 1
    assert shown[("sluice_ingest_events_total", (("form", "segment"),))] == 4
    assert shown[("sluice_ingest_broker_available", ())] == 1
    assert "Sluice ingest" in html
