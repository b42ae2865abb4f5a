"""Who may send: each form's credentials, compared in constant time.

A request without credentials gets 401; one with credentials that do not match gets 403; a
credential header that is not text (a byte that is not UTF-8) gets 400. Each of them counts as a
failed authentication of the client (``worker.ingest.rate_limits.AuthFailures``). Secrets are
compared with ``hmac.compare_digest`` so the time of an answer says nothing about how much of a
guess was right.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from aiohttp import web

from worker.config import IngestForm, Settings
from worker.ingest.errors import BadHeader, Forbidden, Unauthenticated
from worker.ingest.write_keys import WriteKeyError, WriteKeys

SIGNATURE_HEADER = "X-Signature"
FIREHOSE_KEY_HEADER = "X-Amz-Firehose-Access-Key"


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def credential_header(request: web.Request, name: str) -> str | None:
    """A header holding a credential, or None; BadHeader (400) if it is not UTF-8 text.

    aiohttp keeps a header's undecodable bytes as surrogates, which cannot be compared.
    """
    value = request.headers.get(name)
    if value is None:
        return None
    try:
        value.encode()
    except UnicodeEncodeError:
        refusal = BadHeader(f"the {name} header is not UTF-8 text")
        refusal.failed_authentication = True
        raise refusal from None
    return value


def credential_problems(settings: Settings) -> list[str]:
    """What is missing for the configured forms (empty when every form can be verified)."""
    problems = []
    if IngestForm.SEGMENT in settings.ingest_forms:
        basic = settings.ingest_segment_username, settings.ingest_segment_password
        if any(basic) and not all(basic):
            problems.append("SLUICE_INGEST_SEGMENT_USERNAME and SLUICE_INGEST_SEGMENT_PASSWORD "
                            "go together")
        elif not settings.ingest_segment_shared_secret and not all(basic):
            problems.append("the `segment` form needs SLUICE_INGEST_SEGMENT_SHARED_SECRET or "
                            "SLUICE_INGEST_SEGMENT_USERNAME/PASSWORD")
    if IngestForm.FIREHOSE in settings.ingest_forms and not settings.ingest_firehose_access_key:
        problems.append("the `firehose` form needs SLUICE_INGEST_FIREHOSE_ACCESS_KEY")
    if IngestForm.JSON in settings.ingest_forms and not settings.ingest_bearer_tokens:
        problems.append("the `json` form needs SLUICE_INGEST_BEARER_TOKENS")
    if (IngestForm.TRACKING in settings.ingest_forms and not settings.ingest_write_keys
            and settings.ingest_write_keys_file is None):
        problems.append("the `tracking` form needs SLUICE_INGEST_WRITE_KEYS or "
                        "SLUICE_INGEST_WRITE_KEYS_FILE")
    elif IngestForm.TRACKING in settings.ingest_forms:
        try:
            WriteKeys(settings)
        except WriteKeyError as error:
            problems.append(str(error))
    if not settings.ingest_forms:
        problems.append("SLUICE_INGEST_FORMS is empty: name at least one of "
                        + ", ".join(form.value for form in IngestForm))
    return problems


def segment_signature(secret: str, body: bytes) -> str:
    """Segment's request signature: the hex HMAC-SHA1 of the body with the shared secret."""
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def _basic_credentials(request: web.Request) -> tuple[str, str] | None:
    scheme, _, value = (credential_header(request, "Authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, ValueError):
        raise Forbidden("the basic-auth credentials are not valid base64") from None
    return user, password


def segment_signature_presented(settings: Settings, request: web.Request) -> bool:
    """Whether a Segment request is to be verified by its `X-Signature`, which needs its body;
    any other Segment credential is in a header and is verified before the body is read."""
    return (credential_header(request, SIGNATURE_HEADER) is not None
            and bool(settings.ingest_segment_shared_secret))


def verify_segment(settings: Settings, request: web.Request, body: bytes) -> None:
    """A valid `X-Signature` for the body, or the configured basic-auth user and password."""
    signature = credential_header(request, SIGNATURE_HEADER)
    secret = settings.ingest_segment_shared_secret
    if signature is not None and secret:
        if not _same(signature.strip().lower(), segment_signature(secret, body)):
            raise Forbidden(f"{SIGNATURE_HEADER} does not match the body and the shared secret "
                            "(SLUICE_INGEST_SEGMENT_SHARED_SECRET)")
        return
    basic = _basic_credentials(request)
    user, password = settings.ingest_segment_username, settings.ingest_segment_password
    if basic is not None and user and password:
        # Both compared, always: no early exit on the user name.
        if not (_same(basic[0], user) & _same(basic[1], password)):
            raise Forbidden("wrong basic-auth user name or password")
        return
    if signature is not None or basic is not None:
        raise Forbidden("these credentials are not configured for Segment: use "
                        + ("the X-Signature" if secret else "basic auth"))
    raise Unauthenticated(f"sign the body ({SIGNATURE_HEADER}) or use basic auth",
                          {"WWW-Authenticate": 'Basic realm="sluice"'})


def verify_firehose(settings: Settings, request: web.Request) -> None:
    """The delivery stream's access key, in `X-Amz-Firehose-Access-Key`."""
    given = credential_header(request, FIREHOSE_KEY_HEADER)
    if not given:
        raise Unauthenticated(f"no {FIREHOSE_KEY_HEADER} header")
    if not _same(given, settings.ingest_firehose_access_key or ""):
        raise Forbidden(f"wrong {FIREHOSE_KEY_HEADER}")


def verify_bearer(settings: Settings, request: web.Request) -> None:
    """One of the configured bearer tokens, in `Authorization: Bearer …`."""
    scheme, _, token = (credential_header(request, "Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("no `Authorization: Bearer <token>` header",
                              {"WWW-Authenticate": 'Bearer realm="sluice"'})
    # Every token is compared, so the time does not say which one came close.
    matches = [_same(token.strip(), expected) for expected in settings.ingest_bearer_tokens]
    if not any(matches):
        raise Forbidden("the bearer token is not one of SLUICE_INGEST_BEARER_TOKENS")
