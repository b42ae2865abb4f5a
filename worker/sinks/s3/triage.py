"""S3 errors sorted by who must act: nobody (retry), the operator (pause), or the event.

Dead-lettering is for what is wrong with the events themselves. An S3 refusal that comes from
the worker's configuration or the bucket's (a storage class the bucket does not offer, a KMS
key the role may not use, a bucket policy, a deleted bucket) would refuse every object just as
well: dead-lettering would empty the archive into the dead-letter topic. Such a fault pauses
the sink instead: the request is retried with backoff and nothing is acknowledged, so the
consumer stops at the in-flight limit; the fault is logged once per change and reported by the
sink's ``check()`` (``/health/ready``) with the setting to fix. Once fixed, the next retry
succeeds and the worker goes on where it stopped, nothing lost.

Only errors about one object's content dead-letter its events (``CONTENT``). An unknown 4xx
counts as configuration: pausing loses nothing, while dead-lettering on a guess could send the
whole archive away.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class Triage(Enum):
    """What the sink does about an S3 error."""

    TRANSIENT = "retry"           # throttling, 5xx, damaged transfer: retried, logged as such
    CONFIGURATION = "pause"       # retried without limit, unready, one log line per change
    CONTENT = "dead-letter"       # the object itself is unacceptable: its events dead-lettered


@dataclass(frozen=True, slots=True)
class Verdict:
    """An error's triage and, for a configuration fault, what the operator should check."""

    triage: Triage
    fix: str = ""


_TRANSIENT = frozenset({
    # Damaged or cut on the way (a proxy, a network): the part on disk is intact.
    "BadDigest", "IncompleteBody",
    "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling",
    "ThrottlingException", "RequestLimitExceeded", "OperationAborted",
    # A multipart upload that vanished midway: the next attempt starts a new one.
    "NoSuchUpload",
    # Temporary credentials being renewed by the AWS chain.
    "ExpiredToken", "TokenRefreshRequired",
})

_CONTENT = frozenset({"EntityTooLarge", "KeyTooLongError", "InvalidObjectName"})

_CREDENTIALS = ("SLUICE_AWS_ACCESS_KEY_ID / SLUICE_AWS_SECRET_ACCESS_KEY (or the role of the "
                "AWS credential chain)")
_ENCRYPTION = "SLUICE_S3_SERVER_SIDE_ENCRYPTION / SLUICE_S3_SSE_KMS_KEY_ID"
_FIXES = {
    "AccessDenied": f"s3:PutObject, s3:GetObject, s3:DeleteObject on SLUICE_S3_BUCKET for "
                    f"{_CREDENTIALS}, the bucket policy, and kms:GenerateDataKey on "
                    f"SLUICE_S3_SSE_KMS_KEY_ID if set",
    "AllAccessDisabled": "the bucket's account (SLUICE_S3_BUCKET)",
    "AccountProblem": "the bucket's account (SLUICE_S3_BUCKET)",
    "InvalidAccessKeyId": _CREDENTIALS,
    "SignatureDoesNotMatch": _CREDENTIALS,
    "InvalidToken": _CREDENTIALS,
    "NoSuchBucket": "SLUICE_S3_BUCKET (the bucket was deleted, or is in another account)",
    "InvalidBucketName": "SLUICE_S3_BUCKET",
    "PermanentRedirect": "SLUICE_S3_REGION (the bucket is in another region)",
    "AuthorizationHeaderMalformed": "SLUICE_S3_REGION (the bucket is in another region)",
    "InvalidStorageClass": "SLUICE_S3_STORAGE_CLASS",
    "InvalidEncryptionAlgorithmError": _ENCRYPTION,
    "InvalidArgument": f"{_ENCRYPTION} / SLUICE_S3_STORAGE_CLASS (S3's message names the "
                       f"argument)",
    "InvalidRequest": f"{_ENCRYPTION} / SLUICE_S3_STORAGE_CLASS (S3's message says which)",
    "RequestTimeTooSkewed": "the worker's clock (NTP): S3 refuses requests signed more than "
                            "15 minutes off",
    "NotImplemented": "SLUICE_S3_ENDPOINT_URL (the server does not implement a request Sluice "
                      "needs) or the object settings",
}
_DEFAULT_FIX = ("the S3 settings (SLUICE_S3_*), the credentials and the bucket's policy "
                "(S3's message says what it refused)")


def classify(code: str, status: int) -> Verdict:
    """The verdict on an S3 error code (``ClientError``'s ``Error.Code``) and HTTP status."""
    if code in _TRANSIENT or status == 429 or status >= 500:
        return Verdict(Triage.TRANSIENT)
    if code in _CONTENT:
        return Verdict(Triage.CONTENT)
    if code.startswith("KMS."):
        return Verdict(Triage.CONFIGURATION,
                       f"{_ENCRYPTION}: the KMS key must exist, be enabled, be in the bucket's "
                       f"region and allow kms:GenerateDataKey to the worker's role")
    return Verdict(Triage.CONFIGURATION, _FIXES.get(code, _DEFAULT_FIX))


def status_of(error: Any) -> int:
    """The HTTP status of a botocore ``ClientError`` (0 when it has none)."""
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


@dataclass(frozen=True, slots=True)
class Refusal:
    """What S3 answered to a refused request (a botocore ``ClientError``), and its verdict."""

    code: str
    status: int
    message: str
    verdict: Verdict

    @classmethod
    def of(cls, error: Any) -> Refusal:
        answer = error.response.get("Error", {})
        code, status = str(answer.get("Code", "")), status_of(error)
        return cls(code, status, str(answer.get("Message", "")), classify(code, status))

    def __str__(self) -> str:
        return f"{self.code} ({self.status}) {self.message}".rstrip()

    def advice(self) -> str:
        """This refusal and the setting to check, for a configuration fault."""
        return f"{self}; check {self.verdict.fix or _DEFAULT_FIX}"
