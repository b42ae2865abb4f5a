"""S3 errors sorted by who must act: retried, paused with the setting to fix, or dead-lettered."""

import asyncio
import logging

import pytest
from botocore.exceptions import ClientError

from worker.sinks.s3.objects import Rejected, RetryPolicy, S3Objects
from worker.sinks.s3.triage import Triage, classify


@pytest.mark.parametrize(("code", "status", "triage", "setting"), [
    ("SlowDown", 503, Triage.TRANSIENT, ""),
    ("InternalError", 500, Triage.TRANSIENT, ""),
    ("BadDigest", 400, Triage.TRANSIENT, ""),
    ("RequestTimeout", 400, Triage.TRANSIENT, ""),
    ("ExpiredToken", 400, Triage.TRANSIENT, ""),
    ("Anything", 429, Triage.TRANSIENT, ""),
    ("EntityTooLarge", 400, Triage.CONTENT, ""),
    ("KeyTooLongError", 400, Triage.CONTENT, ""),
    ("AccessDenied", 403, Triage.CONFIGURATION, "SLUICE_S3_BUCKET"),
    ("KMS.NotFoundException", 400, Triage.CONFIGURATION, "SLUICE_S3_SSE_KMS_KEY_ID"),
    ("KMS.DisabledException", 400, Triage.CONFIGURATION, "SLUICE_S3_SSE_KMS_KEY_ID"),
    ("InvalidArgument", 400, Triage.CONFIGURATION, "SLUICE_S3_SERVER_SIDE_ENCRYPTION"),
    ("InvalidStorageClass", 400, Triage.CONFIGURATION, "SLUICE_S3_STORAGE_CLASS"),
    ("NoSuchBucket", 404, Triage.CONFIGURATION, "SLUICE_S3_BUCKET"),
    ("InvalidAccessKeyId", 403, Triage.CONFIGURATION, "SLUICE_AWS_ACCESS_KEY_ID"),
    ("SignatureDoesNotMatch", 403, Triage.CONFIGURATION, "SLUICE_AWS_SECRET_ACCESS_KEY"),
    ("PermanentRedirect", 301, Triage.CONFIGURATION, "SLUICE_S3_REGION"),
    ("SomethingNew", 400, Triage.CONFIGURATION, "SLUICE_S3_"),
])
def test_each_s3_error_goes_to_whoever_must_act(
    code: str, status: int, triage: Triage, setting: str
) -> None:
    verdict = classify(code, status)
    assert verdict.triage is triage
    assert setting in verdict.fix


def _error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} says no"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


class _Refusing:
    """Raises the scripted errors, then succeeds."""

    def __init__(self, *errors: ClientError) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def upload(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "stored"


def _objects() -> S3Objects:
    return S3Objects(None, "bucket", RetryPolicy(0.001, 0.002), {}, 1, 1, lambda: None)


async def test_a_configuration_fault_pauses_is_reported_once_and_clears_on_success(
    caplog: pytest.LogCaptureFixture,
) -> None:
    objects = _objects()
    refusing = _Refusing(*[_error("InvalidStorageClass", 400)] * 5)
    seen: list[dict[str, str]] = []

    async def upload() -> str:
        seen.append(dict(objects.faults))
        return await refusing.upload()

    upload.__name__ = "upload"
    with caplog.at_level(logging.WARNING):
        assert await objects.retrying("upload x", upload, permanent_4xx=True) == "stored"
    assert refusing.calls == 6
    assert "SLUICE_S3_STORAGE_CLASS" in seen[-1]["upload"]
    assert objects.faults == {}
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "InvalidStorageClass" in errors[0].getMessage()


async def test_only_an_error_about_the_object_itself_is_a_rejection() -> None:
    objects = _objects()
    with pytest.raises(Rejected, match="EntityTooLarge"):
        await objects.retrying("upload x", _Refusing(_error("EntityTooLarge", 400)).upload,
                               permanent_4xx=True)
    # Not for a marker or a copy: there the content is Sluice's own, retried.
    assert await objects.retrying("write marker", _Refusing(_error("EntityTooLarge", 400)).upload
                                  ) == "stored"


class _AlwaysRefusing:
    """Refuses every call with a configuration fault; `refused` is set at the first."""

    def __init__(self, code: str = "InvalidStorageClass", message: str = "") -> None:
        self.refused = asyncio.Event()
        self.code, self.message = code, message

    async def upload(self) -> str:
        self.refused.set()
        error = _error(self.code, 400 if self.code != "AccessDenied" else 403)
        if self.message:
            error.response["Error"]["Message"] = self.message
        raise error


async def test_a_fault_goes_with_its_call_when_the_call_is_cancelled() -> None:
    # A revocation cancels the retries of a refused upload; no call of that kind may come again
    # (the partition went to another worker), so a fault kept after it would leave the worker
    # reporting unready for good.
    objects = _objects()
    refusing = _AlwaysRefusing()
    task = asyncio.ensure_future(objects.retrying("upload x", refusing.upload, permanent_4xx=True))
    await refusing.refused.wait()
    assert "SLUICE_S3_STORAGE_CLASS" in objects.faults["upload"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert objects.faults == {}


async def test_a_fault_stays_while_another_call_of_its_kind_still_meets_it() -> None:
    objects = _objects()
    refusing_a, refusing_b = _AlwaysRefusing(), _AlwaysRefusing()
    first = asyncio.ensure_future(objects.retrying("upload a", refusing_a.upload))
    second = asyncio.ensure_future(objects.retrying("upload b", refusing_b.upload))
    await refusing_a.refused.wait()
    await refusing_b.refused.wait()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    # A marker write that succeeds is another kind of call: it does not clear the upload's fault.
    async def put_object() -> str:
        return "stored"

    assert await objects.retrying("write marker", put_object) == "stored"
    assert "SLUICE_S3_STORAGE_CLASS" in objects.faults["upload"]
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert objects.faults == {}


async def test_a_fault_is_logged_once_while_calls_meet_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # AWS's AccessDenied names the resource: concurrent uploads meet different texts of the
    # same fault. Each text is said once, not once per retry of whichever call came last.
    objects = _objects()
    refusing = [_AlwaysRefusing("AccessDenied", f"no s3:PutObject on logs/part-{n}")
                for n in range(2)] * 2
    with caplog.at_level(logging.ERROR):
        calls = [asyncio.ensure_future(objects.retrying(f"upload {n}", r.upload))
                 for n, r in enumerate(refusing)]
        for r in refusing:
            await r.refused.wait()
        await asyncio.sleep(0.02)  # each has met it several times
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2, errors
