"""Why a request was refused: each refusal carries its HTTP status and a reason for a person."""

from __future__ import annotations


class Refused(Exception):
    """A request answered with an error status; `reason` says what to fix. `closes`: the
    connection is closed after the answer (its body was not read to the end);
    `failed_authentication`: the client's credentials were missing, wrong or unreadable."""

    status = 400
    closes = False
    failed_authentication = False

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
    failed_authentication = True


class Forbidden(Refused):
    """Credentials were presented and are wrong (403)."""

    status = 403
    failed_authentication = True


class BadHeader(Refused):
    """A header the request needs cannot be read (400): e.g. a byte that is not UTF-8."""

    status = 400


class TooLarge(Refused):
    """The body (or one record of it) is larger than allowed (413)."""

    status = 413


class TimedOut(Refused):
    """The request's body did not arrive in time (408); its connection is closed."""

    status = 408


class TooManyRequests(Refused):
    """A rate limit is reached (429, with Retry-After): slow down."""

    status = 429


class Unavailable(Refused):
    """Nothing of the request was written, and it may be sent again (503, with Retry-After):
    the broker did not acknowledge in time, or the server has no room for the body now."""

    status = 503


class Unconfirmed(Refused):
    """The broker did not say in time whether the request's records were written (504, with
    Retry-After): sending them again may write them twice. Rare: only a broker lost between
    the request's acknowledgements and the commit of its transaction."""

    status = 504


class IngestStartupError(Exception):
    """`sluice ingest` cannot start; the message names the setting or the cause to fix."""
