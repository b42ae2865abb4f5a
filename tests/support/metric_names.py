"""The metric names Sluice's processes export, read from their real collectors (no network):
what deploy/prometheus/ and deploy/grafana/ may refer to."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from prometheus_client.registry import CollectorRegistry

from worker.app import create_app
from worker.config import load_settings
from worker.ingest.metrics import IngestMetrics
from worker.ops.server import OpsServer

# A PromQL word that names a Sluice metric (recording rules are `sluice:…`, not matched).
METRIC_NAME = re.compile(r"\bsluice_[a-z0-9_]+\b")


def _names(registry: CollectorRegistry) -> set[str]:
    names = set()
    for family in registry.collect():
        names.add(family.name + ("_total" if family.type == "counter" else ""))
        names.update(sample.name for sample in family.samples)
        if family.type in ("summary", "histogram"):
            names.update(f"{family.name}_{suffix}" for suffix in ("count", "sum", "bucket"))
    return names


def exported_metric_names() -> set[str]:
    """Every sample name of a worker with every sink, and of `sluice ingest`."""
    with tempfile.TemporaryDirectory() as state:
        app = create_app(load_settings(sinks=["elasticsearch", "s3", "counting"],
                                       s3_publish="hourly", web_port=6066,
                                       state_dir=Path(state)))
        assert app.ops is not None
        names = _names(app.ops.registry)
    ingest = IngestMetrics(lambda: True)
    OpsServer("127.0.0.1", 0, ingest.registry, _never_ready)  # adds the readiness families
    ingest.answered("segment", 200, 1, 1, 0.01)  # labelled families show their samples
    return names | _names(ingest.registry)


async def _never_ready() -> dict[str, str]:
    return {"test": "not started"}


def metric_names_in(expression: str) -> set[str]:
    """The Sluice metrics a PromQL expression reads."""
    return set(METRIC_NAME.findall(expression))
