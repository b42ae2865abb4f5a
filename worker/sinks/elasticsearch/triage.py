"""What an Elasticsearch error answer says: its type, its reason, and the rejection a document
refused for its content is dead-lettered with."""

from __future__ import annotations

from elasticsearch import ApiError

from worker.events.errors import SinkRejected


def error_type_of(error: ApiError) -> str:
    """The `error.type` of an Elasticsearch error answer ("" when it has none)."""
    body = error.body if isinstance(error.body, dict) else {}
    detail = body.get("error")
    return str(detail.get("type", "")) if isinstance(detail, dict) else ""


def reason_of(error: object) -> str:
    """An item's or answer's `error` as one line: its reason and what caused it."""
    if not isinstance(error, dict):
        return str(error)
    reason = str(error.get("reason", ""))
    caused_by = error.get("caused_by")
    if isinstance(caused_by, dict) and caused_by.get("reason"):
        reason += f" (caused by {caused_by.get('type')}: {caused_by['reason']})"
    return reason


def rejection(status: int, error: object, sink: str) -> SinkRejected:
    """The dead-letter reason of a document refused for its content (not retried), with what to
    do for an index that may not be created."""
    error_type = f"HTTP {status}"
    if isinstance(error, dict):
        error_type = str(error.get("type", error_type))
    if error_type == "index_not_found_exception":
        return SinkRejected(
            f"index_not_found_exception: {reason_of(error)}. The index does not exist and may "
            "not be created automatically: create it, allow auto-creation for this pattern, or "
            "give the API key the create_index privilege; then replay this dead letter.",
            sink=sink, retriable=True,
        )
    return SinkRejected(f"{error_type}: {reason_of(error)}", sink=sink)
