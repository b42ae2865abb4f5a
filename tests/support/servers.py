"""Which servers the suite runs against: the local stack, or servers the settings point at.

The fixtures read every address from the settings (``SLUICE_*`` variables, as the worker does).
When all of them are on this machine's loopback the suite reuses the local stack there, or starts
one; when any of them points elsewhere, the suite starts nothing and uses the servers as they are.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from worker.config import Settings

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})


def addresses(settings: Settings) -> dict[str, list[str]]:
    """The servers' addresses by the setting that names them."""
    return {
        "SLUICE_KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_server_list,
        "SLUICE_ELASTICSEARCH_URL": [url.strip() for url in settings.elasticsearch_url.split(",")],
        "SLUICE_S3_ENDPOINT_URL": [settings.s3_endpoint_url or ""],
    }


def _host(address: str) -> str | None:
    return urlsplit(address if "//" in address else f"//{address}").hostname


def on_loopback(settings: Settings) -> bool:
    """Whether every server of the settings is on loopback, where the local stack serves.

    Elastic Cloud (a cloud id) and AWS's own S3 endpoints (no endpoint URL) are elsewhere.
    """
    if settings.elasticsearch_cloud_id:
        return False
    return all(_host(address) in LOOPBACK_HOSTS
               for listed in addresses(settings).values() for address in listed)
