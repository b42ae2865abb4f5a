"""Kibana's saved-objects import API: ``POST /api/saved_objects/_import?overwrite=true``.

The request is what Kibana documents: ``multipart/form-data`` with the NDJSON as the ``file``
field, the ``kbn-xsrf`` header (Kibana refuses API writes without it), and ``/s/<space>/`` in
front of the path for a space other than the default. ``overwrite=true`` replaces objects of
the same ids, so importing again updates the dashboard instead of adding a copy. Credentials
are SLUICE_KIBANA_API_KEY (``Authorization: ApiKey …``) or SLUICE_KIBANA_USERNAME/PASSWORD.

Every failure is a ``KibanaImportError`` whose message says what to check.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import aiohttp
import orjson

from worker.config import Settings, redact_url

IMPORT_TIMEOUT_SECONDS = 60.0


class KibanaImportError(Exception):
    """The import did not happen, or not for every object; the message says why."""


@dataclass(frozen=True)
class ImportResult:
    """What Kibana answered: how many objects it imported."""

    imported: int


def import_url(settings: Settings) -> str:
    """The import endpoint, in the configured space."""
    base = settings.kibana_url.rstrip("/")
    space = f"/s/{settings.kibana_space}" if settings.kibana_space else ""
    return f"{base}{space}/api/saved_objects/_import?overwrite=true"


def _headers(settings: Settings) -> dict[str, str]:
    headers = {"kbn-xsrf": "sluice"}
    if settings.kibana_api_key:
        headers["Authorization"] = f"ApiKey {settings.kibana_api_key}"
    return headers


async def import_saved_objects(settings: Settings, ndjson: bytes) -> ImportResult:
    """Send the NDJSON to Kibana; raise KibanaImportError unless every object was imported."""
    form = aiohttp.FormData()
    form.add_field("file", ndjson, filename="sluice.ndjson", content_type="application/ndjson")
    auth = (aiohttp.BasicAuth(settings.kibana_username, settings.kibana_password)
            if settings.kibana_username and settings.kibana_password else None)
    context = (ssl.create_default_context(cafile=str(settings.kibana_ca_certs))
               if settings.kibana_ca_certs else None)
    where = redact_url(settings.kibana_url)
    try:
        async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=IMPORT_TIMEOUT_SECONDS)) as session:
            async with session.post(import_url(settings), data=form, headers=_headers(settings),
                                    auth=auth, ssl=context) as answer:
                body = await answer.read()
                status = answer.status
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise KibanaImportError(
            f"Kibana did not answer at {where} ({type(error).__name__}: {error}); check "
            "SLUICE_KIBANA_URL and that Kibana runs") from None
    return _result(status, body, settings)


def _result(status: int, body: bytes, settings: Settings) -> ImportResult:
    try:
        answer = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        answer = {}
    message = answer.get("message") if isinstance(answer, dict) else None
    if status == 401:
        raise KibanaImportError(
            "Kibana refused the credentials (401): set SLUICE_KIBANA_API_KEY, or "
            "SLUICE_KIBANA_USERNAME and SLUICE_KIBANA_PASSWORD")
    if status == 403:
        raise KibanaImportError(
            "Kibana refused the import (403): the user or API key needs the privilege to manage "
            f"saved objects (dashboards and data views) in the space; {message or ''}".rstrip())
    if status == 404 and settings.kibana_space:
        raise KibanaImportError(
            f"Kibana has no space {settings.kibana_space!r} (404): create it or change "
            "SLUICE_KIBANA_SPACE")
    if status != 200 or not isinstance(answer, dict):
        raise KibanaImportError(f"Kibana answered {status} to the import: "
                                f"{message or body[:500].decode(errors='replace')}")
    if not answer.get("success", False):
        errors = answer.get("errors") or []
        described = "; ".join(
            f"{error.get('type')} {error.get('id')}: "
            f"{(error.get('error') or {}).get('type', 'error')}" for error in errors)
        raise KibanaImportError(f"Kibana imported {answer.get('successCount', 0)} objects and "
                                f"refused {len(errors)}: {described}")
    return ImportResult(int(answer.get("successCount", 0)))
