"""Validation of API input: each rule raises `InvalidInput` naming the field and what is allowed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from uuid_utils.compat import uuid7

from jobd.config import QUEUE_NAME
from jobd.errors import InvalidInput
from jobd.handlers import Registry
from jobd.models import (
    BACKOFF_SECONDS_LIMIT,
    DEFAULT_BACKOFF_SECONDS,
    DEFAULT_MAX_RETRIES,
    MAX_RETRIES_LIMIT,
    PRIORITY_LIMIT,
    NewJob,
    RetryPolicy,
    Status,
)

TYPE_MAX_CHARS = 100
TIMEOUT_LIMIT_SECONDS = 7 * 86_400
JOB_FIELDS = ("type", "payload", "scheduleAt", "retryPolicy", "queue", "priority", "timeoutSeconds")
RETRY_FIELDS = ("maxRetries", "backoffSeconds")
LIST_LIMIT_MAX = 200
LIST_LIMIT_DEFAULT = 50


def parse_body(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(None, f"the request body is not valid JSON: {error}", code="malformed_json") from None


def parse_job(data: Any, registry: Registry, max_payload_bytes: int, field_prefix: str = "") -> NewJob:
    """Validate one job submission (the body of POST /jobs)."""
    if not isinstance(data, Mapping):
        raise InvalidInput(field_prefix.rstrip(".") or None, "a job must be a JSON object with at least a 'type' field")
    unknown = sorted(set(data) - set(JOB_FIELDS))
    if unknown:
        raise InvalidInput(
            field_prefix + unknown[0], f"unknown field {unknown[0]!r}; allowed fields: {', '.join(JOB_FIELDS)}"
        )
    return NewJob(
        id=uuid7(),
        type=_parse_type(data.get("type"), registry, field_prefix + "type"),
        payload=_parse_payload(data.get("payload"), max_payload_bytes, field_prefix + "payload"),
        queue=_parse_queue(data.get("queue", "default"), field_prefix + "queue"),
        priority=_parse_int(data.get("priority", 0), field_prefix + "priority", -PRIORITY_LIMIT, PRIORITY_LIMIT),
        schedule_at=_parse_time(data.get("scheduleAt"), field_prefix + "scheduleAt"),
        retry=_parse_retry(data.get("retryPolicy"), field_prefix + "retryPolicy"),
        timeout_seconds=_parse_optional_int(data.get("timeoutSeconds"), field_prefix + "timeoutSeconds", 1, TIMEOUT_LIMIT_SECONDS),
    )


def _parse_type(value: Any, registry: Registry, field: str) -> str:
    registered = ", ".join(registry.types) or "none"
    if value is None:
        raise InvalidInput(field, f"{field} is required; registered types: {registered}")
    if not isinstance(value, str):
        raise InvalidInput(field, f"{field} must be a string; registered types: {registered}")
    _reject_nul(value, field)
    if not value.strip():
        raise InvalidInput(field, f"{field} must not be empty; registered types: {registered}")
    if len(value) > TYPE_MAX_CHARS:
        raise InvalidInput(field, f"{field} must be at most {TYPE_MAX_CHARS} characters; got {len(value)}")
    if value not in registry:
        raise InvalidInput(field, f"{field} {value!r} is not a registered job type; registered types: {registered}")
    return value


def _parse_payload(value: Any, max_bytes: int, field: str) -> Any:
    """Accept a JSON value, or a string holding JSON as older clients send it; return the value."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as error:
            raise InvalidInput(
                field,
                f"{field} is a string but not valid JSON ({error}); send a JSON value, or a string that holds JSON",
            ) from None
    encoded = orjson.dumps(value)
    if len(encoded) > max_bytes:
        raise InvalidInput(
            field,
            f"{field} is {len(encoded)} bytes as JSON; the limit is {max_bytes} bytes (JOBD_MAX_PAYLOAD_BYTES)",
            code="payload_too_large",
            status=413,
        )
    if b"\\u0000" in encoded:
        raise InvalidInput(field, f"{field} must not contain NUL characters (\\u0000); PostgreSQL cannot store them")
    return value


def _parse_queue(value: Any, field: str) -> str:
    if not isinstance(value, str) or not QUEUE_NAME.match(value):
        raise InvalidInput(field, f"{field} must be 1 to 64 letters, digits or _.:- ; got {_show(value)}")
    return value


def _parse_time(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    example = "for example 2026-12-04T20:15:00Z or 2026-12-04T21:15:00+01:00"
    if not isinstance(value, str):
        raise InvalidInput(field, f"{field} must be an ISO 8601 string with a UTC offset, {example}")
    _reject_nul(value, field)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(field, f"{field} {_show(value)} is not an ISO 8601 date-time; use one {example}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(field, f"{field} {_show(value)} has no UTC offset; add Z or +HH:MM, {example}")
    return moment


def _parse_retry(value: Any, field: str) -> RetryPolicy:
    if value is None:
        return RetryPolicy()
    if not isinstance(value, Mapping):
        raise InvalidInput(field, f"{field} must be an object with maxRetries and backoffSeconds")
    unknown = sorted(set(value) - set(RETRY_FIELDS))
    if unknown:
        raise InvalidInput(f"{field}.{unknown[0]}", f"unknown field {unknown[0]!r} in {field}; allowed: maxRetries, backoffSeconds")
    return RetryPolicy(
        max_retries=_parse_int(value.get("maxRetries", DEFAULT_MAX_RETRIES), f"{field}.maxRetries", 0, MAX_RETRIES_LIMIT),
        backoff_seconds=_parse_int(
            value.get("backoffSeconds", DEFAULT_BACKOFF_SECONDS), f"{field}.backoffSeconds", 0, BACKOFF_SECONDS_LIMIT
        ),
    )


def _parse_int(value: Any, field: str, minimum: int, maximum: int) -> int:
    # bool is an int subclass in Python, but `true` is no number in JSON.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, f"{field} must be a whole number from {minimum} to {maximum}; got {_show(value)}")
    if not minimum <= value <= maximum:
        raise InvalidInput(field, f"{field} must be from {minimum} to {maximum}; got {value}")
    return value


def _parse_optional_int(value: Any, field: str, minimum: int, maximum: int) -> int | None:
    return None if value is None else _parse_int(value, field, minimum, maximum)


def _reject_nul(value: str, field: str) -> None:
    if "\x00" in value:
        raise InvalidInput(field, f"{field} must not contain NUL characters")


def _show(value: Any) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_job_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise InvalidInput("id", f"job id {_show(text)} is not a UUID, e.g. 0193a7a4-8f5e-7cc1-9b3a-2c1d4e5f6a7b") from None


def parse_status(text: str | None) -> Status | None:
    if text is None or text == "":
        return None
    try:
        return Status(text.upper())
    except ValueError:
        raise InvalidInput("status", f"status {_show(text)} is invalid; use one of {', '.join(Status)}") from None


def parse_limit(text: str | None) -> int:
    if text is None or text == "":
        return LIST_LIMIT_DEFAULT
    if not text.isdigit() or not 1 <= int(text) <= LIST_LIMIT_MAX:
        raise InvalidInput("limit", f"limit must be a whole number from 1 to {LIST_LIMIT_MAX}; got {_show(text)}")
    return int(text)


def parse_cursor(text: str | None) -> UUID | None:
    if text is None or text == "":
        return None
    try:
        return UUID(text)
    except ValueError:
        raise InvalidInput("cursor", "cursor is invalid; pass the nextCursor value of the previous page") from None


def parse_text_filter(text: str | None, field: str) -> str | None:
    if text is None or text == "":
        return None
    if len(text) > TYPE_MAX_CHARS or "\x00" in text:
        raise InvalidInput(field, f"{field} must be at most {TYPE_MAX_CHARS} characters without NUL")
    return text
