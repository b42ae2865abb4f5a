"""The Elasticsearch client and the start-up check (credentials, TLS, the index template).

Importable from ``worker.sinks.elasticsearch.sink`` as before. The check fails fast with a message
that says what to check: wrong credentials (401), no privilege to install the index template
(403), an untrusted certificate, Elasticsearch unreachable within
SLUICE_ELASTICSEARCH_STARTUP_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TlsError, TransportError
from elasticsearch import (
    ApiError,
    AsyncElasticsearch,
    AuthenticationException,
    AuthorizationException,
    OrjsonSerializer,
)

from worker.config import Settings, redact_url
from worker.sinks.elasticsearch.naming import index_template

log = logging.getLogger(__name__)


class ElasticsearchStartupError(Exception):
    """Elasticsearch cannot be used with these settings; the message says what to check."""


def make_client(settings: Settings) -> AsyncElasticsearch:
    """An async client for the settings; retries are the sink's business, not the client's."""
    options: dict[str, Any] = {
        "request_timeout": settings.elasticsearch_request_timeout,
        "max_retries": 0,
        "retry_on_timeout": False,
        "verify_certs": settings.elasticsearch_verify_certs,
        # Bulk answers (an item per document) are parsed with orjson instead of the standard
        # library's json: the same results, a fraction of the CPU on the agent's event loop.
        "serializer": OrjsonSerializer(),
    }
    if settings.elasticsearch_cloud_id:
        options["cloud_id"] = settings.elasticsearch_cloud_id
    else:
        options["hosts"] = [url.strip() for url in settings.elasticsearch_url.split(",")]
    if settings.elasticsearch_api_key:
        options["api_key"] = settings.elasticsearch_api_key
    elif settings.elasticsearch_username:
        options["basic_auth"] = (settings.elasticsearch_username, settings.elasticsearch_password)
    if settings.elasticsearch_ca_certs:
        options["ca_certs"] = str(settings.elasticsearch_ca_certs)
    return AsyncElasticsearch(**options)


def describe_cluster(settings: Settings) -> str:
    """Where the cluster is, for messages: never with credentials embedded in a URL."""
    if settings.elasticsearch_cloud_id:
        return f"Elastic Cloud deployment {settings.elasticsearch_cloud_id.split(':')[0]}"
    return ",".join(redact_url(url) for url in settings.elasticsearch_url.split(","))


async def preflight(settings: Settings) -> None:
    """Check that Elasticsearch answers and accepts the credentials; install the template.

    Raises ElasticsearchStartupError with what to check.
    """
    client = make_client(settings)
    where = describe_cluster(settings)
    try:
        deadline = time.monotonic() + settings.elasticsearch_startup_timeout
        while True:
            try:
                await client.info()
                break
            except AuthenticationException as error:
                raise ElasticsearchStartupError(
                    f"Elasticsearch at {where} rejected the credentials (401 Unauthorized): the "
                    "API key is invalid or revoked, or the user name / password is wrong. Check "
                    "SLUICE_ELASTICSEARCH_API_KEY (the Base64 `encoded` value) or "
                    "SLUICE_ELASTICSEARCH_USERNAME / SLUICE_ELASTICSEARCH_PASSWORD."
                ) from error
            except AuthorizationException:
                # A write-only API key may not read cluster info; that is fine for a sink.
                log.info("Elasticsearch at %s: credentials accepted (no cluster-info privilege)",
                         where)
                break
            except TlsError as error:  # retrying cannot make a certificate trusted
                raise ElasticsearchStartupError(
                    f"Elasticsearch at {where}: the TLS certificate is not trusted ({error}). "
                    "Check SLUICE_ELASTICSEARCH_CA_CERTS (the CA that signed it) and the host in "
                    "SLUICE_ELASTICSEARCH_URL."
                ) from error
            except (TransportConnectionError, ConnectionTimeout, TransportError, ApiError) as error:
                if time.monotonic() > deadline:
                    raise ElasticsearchStartupError(
                        f"Elasticsearch at {where} did not answer within "
                        f"{settings.elasticsearch_startup_timeout:.0f}s "
                        f"(SLUICE_ELASTICSEARCH_STARTUP_TIMEOUT): {error}. Check "
                        "SLUICE_ELASTICSEARCH_URL, the network path and the cluster's health."
                    ) from error
                await asyncio.sleep(1.0)
        if settings.elasticsearch_install_template:
            await _install_template(client, settings, where)
    finally:
        await client.close()


async def _install_template(client: AsyncElasticsearch, settings: Settings, where: str) -> None:
    body = index_template(settings.elasticsearch_index, settings.elasticsearch_data_stream)
    try:
        await client.indices.put_index_template(name=settings.elasticsearch_template_name, **body)
    except AuthorizationException as error:
        raise ElasticsearchStartupError(
            f"Elasticsearch at {where} refused to install the index template "
            f"{settings.elasticsearch_template_name!r} (403 Forbidden): the credentials lack the "
            "manage_index_templates privilege. Grant it, or create the template yourself and set "
            "SLUICE_ELASTICSEARCH_INSTALL_TEMPLATE=false."
        ) from error
    except ApiError as error:
        raise ElasticsearchStartupError(
            f"Elasticsearch at {where} rejected the index template "
            f"{settings.elasticsearch_template_name!r}: {error}"
        ) from error
    log.info("index template %s installed for %s", settings.elasticsearch_template_name,
             body["index_patterns"][0])
