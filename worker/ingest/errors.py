"""Why a request was refused: each refusal carries its HTTP status and a reason for a person."""

from __future__ import annotations


class Refused(Exception):
    """A request answered with an error status; `reason` says what to fix."""

    status = 400

    def __init__(self, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.headers = headers or {}


class BadBody(Refused):
    """The body is not one of the path's forms (400)."""

    status = 400


class Unauthenticated(Refused):
    """No credentials were presented (401)."""

    status = 401


class Forbidden(Refused):
    """Credentials were presented and are wrong (403)."""

    status = 403


class TooLarge(Refused):
    """The body (or one record of it) is larger than allowed (413)."""

    status = 413


class Unavailable(Refused):
    """The broker did not acknowledge every record in time (503, with Retry-After)."""

    status = 503


class IngestStartupError(Exception):
    """`sluice ingest` cannot start; the message names the setting or the cause to fix."""
