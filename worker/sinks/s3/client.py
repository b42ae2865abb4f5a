"""The S3 client and the bucket check a worker makes before it starts.

Credentials: SLUICE_AWS_ACCESS_KEY_ID / SLUICE_AWS_SECRET_ACCESS_KEY, or, unset, the standard
AWS chain. TLS is verified against SLUICE_S3_CA_BUNDLE or the system's CAs. Addressing is
path-style with a custom endpoint and virtual-hosted on AWS (SLUICE_S3_ADDRESSING_STYLE).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, SSLError

from worker.config import Settings, redact_url
from worker.sinks.s3.triage import Refusal, Triage

log = logging.getLogger(__name__)


class S3StartupError(Exception):
    """S3 cannot be used with these settings; the message says what to check."""


def make_client_context(settings: Settings, signature_version: str | None = None) -> Any:
    """An aiobotocore S3 client context manager for the settings.

    Without SLUICE_AWS_ACCESS_KEY_ID, botocore finds credentials along the standard AWS chain
    (environment, shared files, IRSA, instance role). TLS is verified against
    SLUICE_S3_CA_BUNDLE, or the system's CAs. `signature_version` overrides botocore's choice
    (``s3v4`` for presigned URLs, which botocore would otherwise sign with SigV2).
    """
    return get_session().create_client(
        "s3",
        region_name=settings.s3_region,
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=settings.aws_secret_access_key,
        verify=str(settings.s3_ca_bundle) if settings.s3_ca_bundle else None,
        config=AioConfig(
            s3={"addressing_style": settings.s3_addressing_style_for_endpoint},
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            signature_version=signature_version,
        ),
    )


def object_arguments(settings: Settings) -> dict[str, Any]:
    """What every object Sluice stores is written with: encryption and storage class."""
    arguments: dict[str, Any] = {}
    if settings.s3_server_side_encryption:
        arguments["ServerSideEncryption"] = settings.s3_server_side_encryption
    if settings.s3_sse_kms_key_id:
        arguments["SSEKMSKeyId"] = settings.s3_sse_kms_key_id
    if settings.s3_storage_class:
        arguments["StorageClass"] = settings.s3_storage_class
    return arguments


def startup_check_key(settings: Settings) -> str:
    """The small object every start writes (overwritten each time, never read)."""
    return f"{settings.s3_prefix}_sluice/startup-check"


async def preflight(settings: Settings) -> None:
    """Check the bucket is reachable with these credentials (creating it if allowed), and
    that an object can be written there with the configured storage class and encryption."""
    where = f"{redact_url(settings.s3_endpoint_url or 'AWS S3')} bucket {settings.s3_bucket!r}"
    deadline = time.monotonic() + settings.s3_startup_timeout
    async with make_client_context(settings) as client:
        await _check_bucket(client, settings, where, deadline)
        await _check_write(client, settings, where, deadline)


async def _check_write(client: Any, settings: Settings, where: str, deadline: float) -> None:
    """Write the start-up check object as parts are written: a storage class, a KMS key or a
    policy S3 refuses stops the worker here, in one line, instead of pausing it at its first
    upload."""
    key = startup_check_key(settings)
    while True:
        try:
            await client.put_object(Bucket=settings.s3_bucket, Key=key,
                                    Body=b"written by a starting Sluice worker\n",
                                    ContentType="text/plain", **object_arguments(settings))
            return
        except ClientError as error:
            refusal = Refusal.of(error)
            if refusal.verdict.triage is not Triage.TRANSIENT:
                raise S3StartupError(
                    f"{where}: a test write of {key} was refused: {refusal.advice()}"
                ) from error
            failure: Exception = error
        except BotoCoreError as error:
            failure = error
        if time.monotonic() > deadline:
            raise S3StartupError(
                f"{where} did not accept a test write within {settings.s3_startup_timeout:.0f}s "
                f"(SLUICE_S3_STARTUP_TIMEOUT): {failure}") from failure
        await asyncio.sleep(1.0)


async def _check_bucket(client: Any, settings: Settings, where: str, deadline: float) -> None:
    """HeadBucket (which needs s3:ListBucket), or CreateBucket if allowed."""
    while True:
        try:
            await client.head_bucket(Bucket=settings.s3_bucket)
            return
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404:
                if not settings.s3_create_bucket:
                    raise S3StartupError(
                        f"{where} does not exist: create it, or set "
                        "SLUICE_S3_CREATE_BUCKET=true"
                    ) from error
                await _create_bucket(client, settings)
                log.info("created S3 bucket %s", settings.s3_bucket)
                return
            if status in (401, 403):
                raise S3StartupError(
                    f"{where}: access refused ({status}). Check SLUICE_AWS_ACCESS_KEY_ID / "
                    "SLUICE_AWS_SECRET_ACCESS_KEY (or the AWS credential chain) and that "
                    "they may list and write the bucket."
                ) from error
            failure: Exception = error
        except (NoCredentialsError, SSLError) as error:
            raise S3StartupError(_not_retried_message(where, error)) from error
        except BotoCoreError as error:
            failure = error
        if time.monotonic() > deadline:
            raise S3StartupError(
                f"{where} did not answer within {settings.s3_startup_timeout:.0f}s "
                f"(SLUICE_S3_STARTUP_TIMEOUT): {failure}. Check SLUICE_S3_ENDPOINT_URL and "
                "SLUICE_S3_REGION."
            ) from failure
        await asyncio.sleep(1.0)


def _not_retried_message(where: str, error: Exception) -> str:
    if isinstance(error, NoCredentialsError):
        return (f"{where}: no AWS credentials found. Set SLUICE_AWS_ACCESS_KEY_ID / "
                "SLUICE_AWS_SECRET_ACCESS_KEY, or give the worker credentials through the AWS "
                "chain (AWS_* environment, AWS_PROFILE, IRSA, an instance role).")
    return (f"{where}: the TLS certificate is not trusted ({error}). Check SLUICE_S3_CA_BUNDLE "
            "(the CA that signed the endpoint's certificate) and SLUICE_S3_ENDPOINT_URL.")


async def _create_bucket(client: Any, settings: Settings) -> None:
    arguments: dict[str, Any] = {"Bucket": settings.s3_bucket}
    if settings.s3_region != "us-east-1":
        arguments["CreateBucketConfiguration"] = {"LocationConstraint": settings.s3_region}
    try:
        await client.create_bucket(**arguments)
    except ClientError as error:
        # AWS in us-east-1 answers 200; other S3 servers say the bucket is already ours.
        if error.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou",):
            raise
