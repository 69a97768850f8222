"""The retry rule, the backoff delays and the Redis score order."""

from datetime import UTC, datetime, timedelta

import pytest

from jobd.models import backoff_delay, redis_score, retry_delay

DAY = 86_400


def test_backoff_doubles_from_base():
    delays = [backoff_delay(2, retry, DAY) for retry in range(1, 6)]

    assert delays == [2, 4, 8, 16, 32]


def test_backoff_is_capped():
    assert backoff_delay(30, 20, DAY) == DAY


def test_backoff_with_huge_retry_number_does_not_overflow():
    assert backoff_delay(86_400, 10**9, DAY) == DAY


def test_backoff_rejects_retry_zero():
    with pytest.raises(ValueError, match="retry must be 1 or more"):
        backoff_delay(2, 0, DAY)


def test_retry_delay_stops_after_max_retries():
    delays = [retry_delay(attempts, 5, 2, DAY) for attempts in range(1, 7)]

    assert delays == [2, 4, 8, 16, 32, None]


def test_zero_retries_fails_after_first_attempt():
    assert retry_delay(1, 0, 30, DAY) is None


def test_higher_priority_scores_lower():
    now = datetime.now(UTC)

    assert redis_score(10, now) < redis_score(0, now) < redis_score(-10, now)


def test_equal_priority_is_fifo_by_due_time():
    now = datetime.now(UTC)

    assert redis_score(0, now) < redis_score(0, now + timedelta(milliseconds=1))


def test_priority_outranks_any_due_time():
    now = datetime.now(UTC)

    assert redis_score(1, now + timedelta(days=365 * 50)) < redis_score(0, now - timedelta(days=365))


def test_score_is_exact_as_float():
    far = datetime(2100, 1, 1, tzinfo=UTC)

    for priority in (-1000, 0, 1000):
        score = redis_score(priority, far)
        assert abs(score) < 2**53
        assert score == int(score)
