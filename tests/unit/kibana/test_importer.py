import base64

import orjson
import pytest
from typer.testing import CliRunner

from tests.support.fake_kibana import FakeKibana
from worker.cli.main import cli
from worker.config import load_settings
from worker.kibana.importer import KibanaImportError, import_saved_objects
from worker.kibana.saved_objects import DASHBOARD_ID, saved_objects, to_ndjson


async def test_the_import_is_a_multipart_ndjson_post_with_overwrite_and_kbn_xsrf() -> None:
    with FakeKibana() as kibana:
        settings = load_settings(kibana_url=kibana.url, kibana_api_key="a2V5OnNlY3JldA==")
        ndjson = to_ndjson(saved_objects(settings))
        result = await import_saved_objects(settings, ndjson)
    assert result.imported == 2
    (request,) = kibana.received
    assert request.method == "POST"
    assert request.path == "/api/saved_objects/_import"
    assert request.query == {"overwrite": ["true"]}
    assert request.headers["kbn-xsrf"]  # Kibana refuses API writes without it
    assert request.headers["authorization"] == "ApiKey a2V5OnNlY3JldA=="
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    (part,) = request.parts()
    assert part.get_param("name", header="content-disposition") == "file"
    assert part.get_filename().endswith(".ndjson")
    assert part.get_payload(decode=True) == ndjson
    lines = ndjson.decode().splitlines()
    assert [orjson.loads(line)["type"] for line in lines] == ["index-pattern", "dashboard"]


async def test_a_space_goes_in_front_of_the_path_and_basic_auth_is_sent() -> None:
    with FakeKibana() as kibana:
        settings = load_settings(kibana_url=kibana.url + "/", kibana_space="marketing",
                                 kibana_username="elastic", kibana_password="changeme")
        await import_saved_objects(settings, to_ndjson(saved_objects(settings)))
    (request,) = kibana.received
    assert request.path == "/s/marketing/api/saved_objects/_import"
    expected = base64.b64encode(b"elastic:changeme").decode()
    assert request.headers["authorization"] == f"Basic {expected}"


async def test_objects_kibana_refuses_are_named() -> None:
    answer = {"success": False, "successCount": 1, "errors": [
        {"id": DASHBOARD_ID, "type": "dashboard", "error": {"type": "missing_references"}}]}
    with FakeKibana(answer=answer) as kibana:
        settings = load_settings(kibana_url=kibana.url)
        with pytest.raises(KibanaImportError) as error:
            await import_saved_objects(settings, to_ndjson(saved_objects(settings)))
    assert f"dashboard {DASHBOARD_ID}: missing_references" in str(error.value)
    assert "refused 1" in str(error.value)


@pytest.mark.parametrize(("status", "settings", "names"), [
    (401, {}, "SLUICE_KIBANA_API_KEY"),
    (403, {}, "privilege"),
    (404, {"kibana_space": "nope"}, "SLUICE_KIBANA_SPACE"),
    (500, {}, "answered 500"),
])
async def test_a_refused_import_says_what_to_check(status: int, settings: dict,
                                                   names: str) -> None:
    with FakeKibana(status=status, answer={"message": "no"}) as kibana:
        configured = load_settings(kibana_url=kibana.url, **settings)
        with pytest.raises(KibanaImportError) as error:
            await import_saved_objects(configured, b"{}\n")
    assert names in str(error.value)


async def test_an_unreachable_kibana_names_the_setting() -> None:
    with FakeKibana() as kibana:
        url = kibana.url
    with pytest.raises(KibanaImportError) as error:
        await import_saved_objects(load_settings(kibana_url=url), b"{}\n")
    assert "SLUICE_KIBANA_URL" in str(error.value)


def test_sluice_kibana_import_prints_the_dashboard_or_one_error_line() -> None:
    runner = CliRunner()
    with FakeKibana() as kibana:
        result = runner.invoke(cli, ["kibana", "import"], env={"SLUICE_KIBANA_URL": kibana.url})
    assert result.exit_code == 0, result.output
    assert "imported 2 saved objects" in result.output
    assert f"{kibana.url}/app/dashboards#/view/{DASHBOARD_ID}" in result.output
    with FakeKibana(status=401) as kibana:
        result = runner.invoke(cli, ["kibana", "import", "--url", kibana.url])
    assert result.exit_code == 1
    assert "SLUICE_KIBANA_API_KEY" in result.output and "Traceback" not in result.output
    assert len(kibana.received) == 1
