"""Every way an event can fail, as a small hierarchy: a stage, a code and a retriable flag.

This is what a dead letter records (headers ``sluice.stage``, ``sluice.error.class``,
``sluice.retriable``) and what a person greps for. Catch at the level you need: all decode
errors, all sink errors, or anything retriable.
"""

from __future__ import annotations

from typing import ClassVar


class SluiceError(Exception):
    """A failure of one record or event, with a reason a person can act on."""

    stage: ClassVar[str] = "pipeline"
    retriable: ClassVar[bool] = False

    @property
    def code(self) -> str:
        """The error class name, e.g. ``InvalidJson``."""
        return type(self).__name__


# --- decode: the record's bytes are not an event Sluice can read ------------------------------


class DecodeError(SluiceError):
    """The record could not be turned into events. Replaying it unchanged fails again."""

    stage = "decode"


class EmptyRecord(DecodeError):
    """The record has no value (null or zero bytes)."""


class RecordTooLarge(DecodeError):
    """The record is larger than SLUICE_MAX_RECORD_BYTES."""


class InvalidJson(DecodeError):
    """The bytes are not valid UTF-8 JSON (or are nested too deeply)."""


class InvalidBase64(DecodeError):
    """A base64 payload (Firehose ``Record.Data`` or a bare string) does not decode."""


class NotAnObject(DecodeError):
    """The JSON is valid but not an object (an array, number, string or null)."""


class UnknownFormat(DecodeError):
    """A JSON object that is none of the input forms Sluice reads."""


class InvalidBatch(DecodeError):
    """A Segment batch envelope whose ``batch`` is not a non-empty list."""


class MissingField(DecodeError):
    """A field the input form requires is absent or empty."""


class WrongType(DecodeError):
    """A field has the wrong JSON type (e.g. ``properties`` is a string)."""


class UnencodableEvent(DecodeError):
    """The event cannot be written as a document (nested too deeply, or an unexpected value)."""


class InvalidTimestamp(DecodeError):
    """A timestamp field is not ISO-8601, Common Log Format or epoch seconds/milliseconds."""


# --- sinks: a destination did not accept an event --------------------------------------------


class SinkError(SluiceError):
    """A sink could not durably write an event. ``stage`` is the sink's name."""

    def __init__(self, message: str, *, sink: str, retriable: bool = False) -> None:
        super().__init__(message)
        self.sink = sink
        self._retriable = retriable

    @property
    def stage(self) -> str:  # type: ignore[override]
        return self.sink

    @property
    def retriable(self) -> bool:  # type: ignore[override]
        return self._retriable


class SinkRejected(SinkError):
    """The destination rejected the event's content; retrying it unchanged will fail again."""


class SinkUnavailable(SinkError):
    """The destination could not be reached or refused for now; retrying may succeed."""

    def __init__(self, message: str, *, sink: str) -> None:
        super().__init__(message, sink=sink, retriable=True)
