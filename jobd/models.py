"""Jobs, their statuses and the retry rule. Pure: no I/O here."""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF_SECONDS = 30
MAX_RETRIES_LIMIT = 100
BACKOFF_SECONDS_LIMIT = 86_400
PRIORITY_LIMIT = 1_000


class Status(enum.StrEnum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})
CANCELLABLE = frozenset({Status.PENDING, Status.QUEUED, Status.RUNNING})
RETRYABLE = frozenset({Status.FAILED, Status.CANCELLED})


class Outcome(enum.StrEnum):
    """The end state of one attempt."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    RESCUED = "RESCUED"
    CANCELLED = "CANCELLED"


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """`max_retries` retries follow the first attempt; retry n waits `backoff_seconds * 2**(n-1)`."""

    max_retries: int = DEFAULT_MAX_RETRIES
    backoff_seconds: int = DEFAULT_BACKOFF_SECONDS

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1


def backoff_delay(backoff_seconds: int, retry: int, cap_seconds: int) -> int:
    """Return the delay in seconds before retry number `retry` (1-based), capped at `cap_seconds`.

    The exponent is clamped before the power is taken, so no input can build a huge integer.
    """
    if retry < 1:
        raise ValueError(f"retry must be 1 or more; got {retry}")
    exponent = min(retry - 1, 62)
    return min(backoff_seconds * (1 << exponent), cap_seconds)


def retry_delay(attempts_used: int, max_retries: int, backoff_seconds: int, cap_seconds: int) -> int | None:
    """Return the delay before the next attempt after `attempts_used` failed ones, or None when none is left.

    `attempts_used` counts the attempts made since the job was submitted or last retried by hand.
    """
    if attempts_used > max_retries:
        return None
    return backoff_delay(backoff_seconds, attempts_used, cap_seconds)


@dataclasses.dataclass(frozen=True)
class NewJob:
    """A validated submission, ready to insert."""

    id: UUID
    type: str
    payload: Any
    queue: str
    priority: int
    schedule_at: datetime | None
    retry: RetryPolicy
    timeout_seconds: int | None


def iso(moment: datetime | None) -> str | None:
    """Format a UTC time as ISO 8601 with a `Z` suffix."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment.utcoffset() == timedelta(0) else moment.isoformat()


def redis_score(priority: int, due_at: datetime) -> float:
    """Return the sorted-set score: higher priority first, then the earlier due time (FIFO).

    Due times in milliseconds since 2020 fit in 41 bits, and |priority| <= 1000 keeps the
    whole score below 2**53, so the float stays exact.
    """
    due_ms = int(due_at.timestamp() * 1000) - 1_577_836_800_000
    return float(-priority * (1 << 42) + max(due_ms, 0))
