"""Every SQL statement jobd runs, and the asyncpg pool they run on.

Each statement that changes a job also appends its event to `job_events` in the same
statement, so an event exists exactly when its change committed. Statements that take an
optional `now` use the database clock unless a test pins the time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from jobd.log import fields
from jobd.models import CANCELLABLE, RETRYABLE, TERMINAL, NewJob, Outcome, Status

logger = logging.getLogger(__name__)

# Errors that mean PostgreSQL cannot be reached or is restarting, as opposed to a rejected statement.
UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)

MIGRATIONS_LOCK = 7_351_001  # advisory lock key held while migrations run
MAINTENANCE_LOCK = 7_351_002  # advisory lock key of the one node doing maintenance passes

JOB_COLUMNS = """
    id, type, queue, priority, payload, status, schedule_at, attempt, attempt_base,
    max_retries, backoff_seconds, timeout_seconds, result, last_error, node,
    lease_expires_at, created_at, updated_at, started_at, finished_at
"""

# Insert a batch of jobs; a job that is already due is QUEUED in the same statement.
INSERT_JOBS = f"""
WITH inserted AS (
    INSERT INTO jobs (id, type, queue, priority, payload, status, schedule_at,
                      max_retries, backoff_seconds, timeout_seconds, queued_at)
    SELECT u.id, u.type, u.queue, u.priority, u.payload::jsonb,
           CASE WHEN u.schedule_at IS NULL OR u.schedule_at <= now() THEN 'QUEUED' ELSE 'PENDING' END,
           coalesce(u.schedule_at, now()),
           u.max_retries, u.backoff_seconds, u.timeout_seconds,
           CASE WHEN u.schedule_at IS NULL OR u.schedule_at <= now() THEN now() END
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::timestamptz[],
                $7::int[], $8::int[], $9::int[])
         AS u(id, type, queue, priority, payload, schedule_at, max_retries, backoff_seconds, timeout_seconds)
    RETURNING {JOB_COLUMNS}
), events AS (
    INSERT INTO job_events (job_id, kind, type, queue, status, attempt, data)
    SELECT id, 'created', type, queue, status, attempt,
           jsonb_build_object('priority', priority, 'maxAttempts', max_retries + 1, 'scheduleAt', utc_iso(schedule_at))
    FROM inserted
)
SELECT * FROM inserted
"""

# Claim the given QUEUED jobs for one node: the compare-and-set QUEUED -> RUNNING that
# must commit before any handler starts. SKIP LOCKED lets concurrent claimers of the same
# id pass each other instead of queueing on the row lock; the loser simply gets no row.
CLAIM_JOBS = """
WITH candidates AS (
    SELECT id FROM jobs
    WHERE id = ANY($1::uuid[]) AND status = 'QUEUED'
    ORDER BY id
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE jobs AS j
    SET status = 'RUNNING', attempt = j.attempt + 1, node = $2,
        lease_expires_at = now() + make_interval(secs => $3), started_at = now(),
        updated_at = now(), queued_at = NULL
    FROM candidates AS c
    WHERE j.id = c.id
    RETURNING j.id, j.type, j.queue, j.priority, j.payload, j.attempt, j.attempt_base,
              j.max_retries, j.backoff_seconds, j.timeout_seconds, j.started_at
), attempts AS (
    INSERT INTO job_attempts (job_id, attempt, node, started_at, outcome)
    SELECT id, attempt, $2, started_at, 'RUNNING' FROM claimed
), events AS (
    INSERT INTO job_events (job_id, kind, type, queue, status, attempt, data)
    SELECT id, 'running', type, queue, 'RUNNING', attempt, jsonb_build_object('node', $2::text)
    FROM claimed
)
SELECT * FROM claimed
"""

# Record the end of attempts, fenced by job id, attempt number and node: a node whose lease
# was taken over (rescued, cancelled) changes nothing. `delay` is NULL unless a retry follows.
FINISH_ATTEMPTS = """
WITH outcomes AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::float8[])
         AS u(id, attempt, node, status, outcome, result, error, traceback, delay)
), finished AS (
    UPDATE jobs AS j
    SET status = o.status,
        result = o.result::jsonb,
        last_error = coalesce(o.error, j.last_error),
        node = NULL,
        lease_expires_at = NULL,
        schedule_at = CASE WHEN o.delay IS NULL THEN j.schedule_at
                           ELSE now() + make_interval(secs => o.delay) END,
        finished_at = CASE WHEN o.status IN ('COMPLETED', 'FAILED') THEN now() END,
        updated_at = now()
    FROM outcomes AS o
    WHERE j.id = o.id AND j.attempt = o.attempt AND j.node = o.node AND j.status = 'RUNNING'
    RETURNING j.id, j.type, j.queue, j.status, j.attempt, j.schedule_at
), attempts AS (
    UPDATE job_attempts AS a
    SET finished_at = now(), outcome = o.outcome, error = o.error, traceback = o.traceback
    FROM finished AS f JOIN outcomes AS o ON o.id = f.id
    WHERE a.job_id = f.id AND a.attempt = f.attempt
), events AS (
    INSERT INTO job_events (job_id, kind, type, queue, status, attempt, data)
    SELECT f.id,
           CASE WHEN o.outcome = 'RESCUED' THEN 'rescued'
                WHEN f.status = 'COMPLETED' THEN 'completed'
                WHEN f.status = 'FAILED' THEN 'failed'
                ELSE 'retry_scheduled' END,
           f.type, f.queue, f.status, f.attempt,
           jsonb_strip_nulls(jsonb_build_object(
               'outcome', o.outcome, 'error', o.error,
               'retryAt', CASE WHEN f.status = 'PENDING' THEN utc_iso(f.schedule_at) END))
    FROM finished AS f JOIN outcomes AS o ON o.id = f.id
)
SELECT id, status, schedule_at FROM finished
"""

# Extend the leases of the jobs this node is running. Jobs missing from the result are no
# longer this node's (cancelled or rescued) and must stop.
RENEW_LEASES = """
UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3)
WHERE id = ANY($1::uuid[]) AND node = $2 AND status = 'RUNNING'
RETURNING id
"""

# Return interrupted jobs to QUEUED without spending an attempt: the attempt is undone and
# its record removed, as if the claim never happened.
HAND_BACK = """
WITH returned AS (
    UPDATE jobs AS j
    SET status = 'QUEUED', attempt = j.attempt - 1, node = NULL, lease_expires_at = NULL,
        queued_at = now(), updated_at = now()
    FROM unnest($1::uuid[], $2::int[]) AS u(id, attempt)
    WHERE j.id = u.id AND j.attempt = u.attempt AND j.node = $3 AND j.status = 'RUNNING'
    RETURNING j.id, j.type, j.queue, j.priority, j.schedule_at, j.attempt, u.attempt AS undone
), attempts AS (
    DELETE FROM job_attempts AS a USING returned AS r
    WHERE a.job_id = r.id AND a.attempt = r.undone
), events AS (
    INSERT INTO job_events (job_id, kind, type, queue, status, attempt, data)
    SELECT id, 'queued', type, queue, 'QUEUED', attempt, '{"reason": "handed back at shutdown"}'::jsonb
    FROM returned
)
SELECT id, queue, priority, schedule_at FROM returned
"""

# Move due PENDING jobs to QUEUED, oldest due first, in one batch. SKIP LOCKED lets every
# node's scheduler run this at once without two of them moving the same job.
MOVE_DUE = """
WITH due AS (
    SELECT id FROM jobs
    WHERE status = 'PENDING' AND schedule_at <= coalesce($2::timestamptz, now())
    ORDER BY schedule_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE jobs AS j SET status = 'QUEUED', queued_at = now(), updated_at = now()
    FROM due WHERE j.id = due.id
    RETURNING j.id, j.type, j.queue, j.priority, j.schedule_at, j.attempt
), events AS (
    INSERT INTO job_events (job_id, kind, type, queue, status, attempt)
    SELECT id, 'queued', type, queue, 'QUEUED', attempt FROM moved
)
SELECT id, queue, priority, schedule_at FROM moved
"""

# Seconds until the next PENDING job falls due, by the database clock, for the scheduler's sleep.
SECONDS_UNTIL_NEXT_DUE = """
SELECT extract(epoch FROM min(schedule_at) - now())::float8 FROM jobs WHERE status = 'PENDING'
"""

# RUNNING jobs whose lease expired: their node stopped heartbeating. Locked so that only one
# recovery pass handles each.
EXPIRED_LEASES = """
SELECT id, node, attempt, attempt_base, max_retries, backoff_seconds, lease_expires_at
FROM jobs
WHERE status = 'RUNNING' AND lease_expires_at < coalesce($2::timestamptz, now())
ORDER BY lease_expires_at
LIMIT $1
FOR UPDATE SKIP LOCKED
"""

# QUEUED jobs that have waited longer than a worker normally takes to pop them, oldest
# first: Redis may have lost their ids. Keyset pagination by (queued_at, id).
STALE_QUEUED = """
SELECT id, queue, priority, schedule_at, queued_at FROM jobs
WHERE status = 'QUEUED'
  AND queued_at < coalesce($2::timestamptz, now()) - make_interval(secs => $1)
  AND (queued_at, id) > ($3::timestamptz, $4::uuid)
ORDER BY queued_at, id
LIMIT $5
"""

CANCEL_JOB = """
WITH cancelled AS (
    UPDATE jobs AS j
    SET status = 'CANCELLED', node = NULL, lease_expires_at = NULL, queued_at = NULL,
        finished_at = now(), updated_at = now()
    FROM (SELECT id, status AS previous FROM jobs WHERE id = $1 FOR UPDATE) AS old
    WHERE j.id = old.id AND old.previous = ANY($2::text[])
    RETURNING j.id, j.type, j.queue, j.attempt, old.previous
), attempts AS (
    UPDATE job_attempts AS a SET outcome = 'CANCELLED', finished_at = now(),
                                 error = 'cancelled while running'
    FROM cancelled AS c
    WHERE c.previous = 'RUNNING' AND a.job_id = c.id AND a.attempt = c.attempt
), events AS (
    INSERT INTO job_events (job_id, kind, type, queue, status, attempt, data)
    SELECT id, 'cancelled', type, queue, 'CANCELLED', attempt, jsonb_build_object('previous', previous)
    FROM cancelled
)
SELECT id FROM cancelled
"""

# Run a FAILED or CANCELLED job again at once, with a fresh retry budget and its history kept.
RETRY_JOB = """
WITH retried AS (
    UPDATE jobs
    SET status = 'QUEUED', attempt_base = attempt, schedule_at = now(), queued_at = now(),
        result = NULL, finished_at = NULL, updated_at = now()
    WHERE id = $1 AND status = ANY($2::text[])
    RETURNING id, type, queue, priority, schedule_at, attempt
), events AS (
    INSERT INTO job_events (job_id, kind, type, queue, status, attempt, data)
    SELECT id, 'queued', type, queue, 'QUEUED', attempt, '{"reason": "retried by request"}'::jsonb
    FROM retried
)
SELECT id, queue, priority, schedule_at FROM retried
"""

DELETE_JOB = """
WITH deleted AS (
    DELETE FROM jobs WHERE id = $1 AND status = ANY($2::text[])
    RETURNING id, type, queue, status, attempt
), events AS (
    INSERT INTO job_events (job_id, kind, type, queue, status, attempt)
    SELECT id, 'deleted', type, queue, status, attempt FROM deleted
)
SELECT id FROM deleted
"""

# A handler's progress report, accepted only while the reporting attempt still owns the job.
INSERT_PROGRESS = """
INSERT INTO job_events (job_id, kind, type, queue, status, attempt, data)
SELECT id, 'progress', type, queue, status, attempt, $4::text::jsonb
FROM jobs
WHERE id = $1 AND attempt = $2 AND node = $3 AND status = 'RUNNING'
RETURNING id
"""

GET_JOB = f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"

GET_ATTEMPTS = """
SELECT attempt, node, started_at, finished_at, outcome, error, traceback
FROM job_attempts WHERE job_id = $1 ORDER BY attempt
"""

EVENT_COLUMNS = "id, job_id, kind, type, queue, status, attempt, data, at"

GET_JOB_EVENTS = f"SELECT {EVENT_COLUMNS} FROM job_events WHERE job_id = $1 ORDER BY id LIMIT $2"

# Events after `$1` whose writing transactions have all ended, so that no lower id can still
# appear. The caller reads again when a running transaction held the result back.
EVENTS_AFTER = f"""
SELECT {EVENT_COLUMNS} FROM job_events
WHERE id > $1 AND tx < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY id
LIMIT $2
"""

EVENTS_BETWEEN = f"SELECT {EVENT_COLUMNS} FROM job_events WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3"

LAST_EVENT_ID = "SELECT coalesce(max(id), 0) FROM job_events"

EVENTS_PENDING_AFTER = "SELECT EXISTS (SELECT 1 FROM job_events WHERE id > $1)"

COUNT_BY_QUEUE_AND_STATUS = """
SELECT queue, status, sum(count)::bigint AS count
FROM (
    SELECT queue, status, count FROM job_counts
    UNION ALL
    SELECT queue, status, delta FROM job_count_deltas
) AS parts
GROUP BY queue, status
HAVING sum(count) <> 0
"""

FINISHES_SINCE = """
SELECT second, sum(completed)::bigint AS completed, sum(failed)::bigint AS failed
FROM job_finishes
WHERE second >= coalesce($1::timestamptz, now()) - make_interval(secs => $2)
GROUP BY second
ORDER BY second
"""

# Fold the count deltas into job_counts. Only the node holding the maintenance lock runs
# this, so two folds never race for the same counter rows.
FOLD_COUNT_DELTAS = """
WITH taken AS (
    DELETE FROM job_count_deltas RETURNING queue, status, delta
), summed AS (
    SELECT queue, status, sum(delta) AS delta FROM taken GROUP BY queue, status ORDER BY queue, status
)
INSERT INTO job_counts (queue, status, count)
SELECT queue, status, delta FROM summed
ON CONFLICT (queue, status) DO UPDATE SET count = job_counts.count + excluded.count
"""

PRUNE_FINISHES = """
DELETE FROM job_finishes WHERE second < coalesce($1::timestamptz, now()) - make_interval(secs => $2)
"""

# Delete old events in bounded batches so that pruning never holds long locks.
PRUNE_EVENTS = """
DELETE FROM job_events WHERE id IN (
    SELECT id FROM job_events
    WHERE at < coalesce($1::timestamptz, now()) - make_interval(secs => $2)
    ORDER BY id
    LIMIT $3
)
"""

TRY_MAINTENANCE_LOCK = "SELECT pg_try_advisory_xact_lock($1)"


@dataclasses.dataclass(frozen=True)
class AttemptEnd:
    """The end of one attempt, as the worker or recovery decided it."""

    job_id: UUID
    attempt: int
    node: str
    status: Status
    outcome: Outcome
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    retry_delay_seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class JobFilter:
    status: Status | None = None
    type: str | None = None
    queue: str | None = None


_BEGINNING = datetime(1, 1, 1, tzinfo=UTC)


def _encode_json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init_connection(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec("jsonb", encoder=_encode_json, decoder=orjson.loads, schema="pg_catalog")


class Pool:
    """An asyncpg pool that discards a connection after a protocol-level error.

    When the server ends a session on its own (pg_terminate_backend, shutdown), asyncpg can
    leave the connection open but stuck, raising InternalClientError on every use. Such a
    connection is terminated here, so the pool opens a fresh one instead of handing it out again.
    """

    BROKEN = (asyncpg.InternalClientError, asyncpg.InterfaceError)

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    @contextlib.asynccontextmanager
    async def acquire(self):
        async with self._pool.acquire() as connection:
            try:
                yield connection
            except self.BROKEN:
                connection.terminate()
                raise

    async def fetch(self, query: str, *arguments):
        async with self.acquire() as connection:
            return await connection.fetch(query, *arguments)

    async def fetchrow(self, query: str, *arguments):
        async with self.acquire() as connection:
            return await connection.fetchrow(query, *arguments)

    async def fetchval(self, query: str, *arguments):
        async with self.acquire() as connection:
            return await connection.fetchval(query, *arguments)

    async def execute(self, query: str, *arguments):
        async with self.acquire() as connection:
            return await connection.execute(query, *arguments)

    def is_closing(self) -> bool:
        return self._pool.is_closing()

    async def close(self) -> None:
        await self._pool.close()


class Store:
    """jobd's view of PostgreSQL: named operations over one asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool, dsn: str):
        self.pool = Pool(pool)
        self.dsn = dsn

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 2, max_size: int = 20) -> Store:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, init=_init_connection, command_timeout=60
        )
        return cls(pool, dsn)

    async def close(self) -> None:
        await self.pool.close()

    async def listen_connection(self) -> asyncpg.Connection:
        """Open a dedicated connection, outside the pool, for LISTEN."""
        return await asyncpg.connect(self.dsn)

    async def migrate(self, folder: Path) -> list[str]:
        """Apply the numbered `.sql` files in `folder` not yet applied, in order, each in a transaction."""
        applied: list[str] = []
        async with self.pool.acquire() as connection:
            await connection.execute("SELECT pg_advisory_lock($1)", MIGRATIONS_LOCK)
            try:
                await connection.execute(
                    "CREATE TABLE IF NOT EXISTS jobd_migrations ("
                    " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = {row["name"] for row in await connection.fetch("SELECT name FROM jobd_migrations")}
                for path in sorted(folder.glob("[0-9][0-9][0-9][0-9]_*.sql")):
                    if path.name in done:
                        continue
                    async with connection.transaction():
                        await connection.execute(path.read_text())
                        await connection.execute("INSERT INTO jobd_migrations (name) VALUES ($1)", path.name)
                    logger.info("applied migration %s", fields(migration=path.name))
                    applied.append(path.name)
            finally:
                await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATIONS_LOCK)
        return applied

    async def insert_jobs(self, jobs: Sequence[NewJob]) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            INSERT_JOBS,
            [job.id for job in jobs],
            [job.type for job in jobs],
            [job.queue for job in jobs],
            [job.priority for job in jobs],
            # JSON travels as text: a list inside a jsonb[] parameter would read as an array dimension.
            [_encode_json(job.payload) for job in jobs],
            [job.schedule_at for job in jobs],
            [job.retry.max_retries for job in jobs],
            [job.retry.backoff_seconds for job in jobs],
            [job.timeout_seconds for job in jobs],
        )

    async def claim(self, job_ids: Sequence[UUID], node: str, lease_seconds: float) -> list[asyncpg.Record]:
        return await self.pool.fetch(CLAIM_JOBS, list(job_ids), node, lease_seconds)

    async def finish(self, ends: Sequence[AttemptEnd], connection: asyncpg.Connection | None = None) -> list[asyncpg.Record]:
        """Persist attempt ends; returns the rows that the fence let through."""
        arguments = (
            [end.job_id for end in ends],
            [end.attempt for end in ends],
            [end.node for end in ends],
            [str(end.status) for end in ends],
            [str(end.outcome) for end in ends],
            [_encode_json(end.result) if end.status is Status.COMPLETED else None for end in ends],
            [end.error for end in ends],
            [end.traceback for end in ends],
            [end.retry_delay_seconds for end in ends],
        )
        if connection is not None:
            return await connection.fetch(FINISH_ATTEMPTS, *arguments)
        return await self.pool.fetch(FINISH_ATTEMPTS, *arguments)

    async def renew_leases(self, job_ids: Sequence[UUID], node: str, lease_seconds: float) -> set[UUID]:
        rows = await self.pool.fetch(RENEW_LEASES, list(job_ids), node, lease_seconds)
        return {row["id"] for row in rows}

    async def hand_back(self, held: Sequence[tuple[UUID, int]], node: str) -> list[asyncpg.Record]:
        return await self.pool.fetch(HAND_BACK, [job_id for job_id, _ in held], [attempt for _, attempt in held], node)

    async def move_due(self, limit: int, now: datetime | None = None) -> list[asyncpg.Record]:
        return await self.pool.fetch(MOVE_DUE, limit, now)

    async def seconds_until_next_due(self) -> float | None:
        return await self.pool.fetchval(SECONDS_UNTIL_NEXT_DUE)

    async def rescue_expired(self, limit: int, decide, now: datetime | None = None) -> list[asyncpg.Record]:
        """Lock RUNNING jobs with expired leases, let `decide(row)` build each AttemptEnd, persist them.

        Selection and update share one transaction, so the row locks keep other recovery
        passes away until the rescue commits.
        """
        async with self.pool.acquire() as connection, connection.transaction():
            expired = await connection.fetch(EXPIRED_LEASES, limit, now)
            if not expired:
                return []
            return await self.finish([decide(row) for row in expired], connection)

    async def stale_queued(
        self, older_than_seconds: float, after: tuple[datetime, UUID] | None, limit: int, now: datetime | None = None
    ) -> list[asyncpg.Record]:
        after_at, after_id = after or (_BEGINNING, UUID(int=0))
        return await self.pool.fetch(STALE_QUEUED, older_than_seconds, now, after_at, after_id, limit)

    async def insert_progress(self, job_id: UUID, attempt: int, node: str, data: dict) -> bool:
        return await self.pool.fetchval(INSERT_PROGRESS, job_id, attempt, node, _encode_json(data)) is not None

    async def get_job(self, job_id: UUID) -> asyncpg.Record | None:
        return await self.pool.fetchrow(GET_JOB, job_id)

    async def get_attempts(self, job_id: UUID) -> list[asyncpg.Record]:
        return await self.pool.fetch(GET_ATTEMPTS, job_id)

    async def get_job_events(self, job_id: UUID, limit: int = 1_000) -> list[asyncpg.Record]:
        return await self.pool.fetch(GET_JOB_EVENTS, job_id, limit)

    async def list_jobs(self, where: JobFilter, before: UUID | None, limit: int) -> list[asyncpg.Record]:
        """Return up to `limit` jobs newest first, older than the id `before` when given."""
        clauses, arguments = [], []
        for column, value in (("status", where.status), ("type", where.type), ("queue", where.queue)):
            if value is not None:
                arguments.append(str(value))
                clauses.append(f"{column} = ${len(arguments)}")
        if before is not None:
            arguments.append(before)
            clauses.append(f"id < ${len(arguments)}")
        arguments.append(limit)
        condition = " AND ".join(clauses) or "TRUE"
        query = f"SELECT {JOB_COLUMNS} FROM jobs WHERE {condition} ORDER BY id DESC LIMIT ${len(arguments)}"
        return await self.pool.fetch(query, *arguments)

    async def cancel(self, job_id: UUID) -> bool:
        return await self.pool.fetchval(CANCEL_JOB, job_id, sorted(CANCELLABLE)) is not None

    async def retry(self, job_id: UUID) -> asyncpg.Record | None:
        return await self.pool.fetchrow(RETRY_JOB, job_id, sorted(RETRYABLE))

    async def delete(self, job_id: UUID) -> bool:
        return await self.pool.fetchval(DELETE_JOB, job_id, sorted(TERMINAL)) is not None

    async def events_after(self, last_id: int, limit: int) -> list[asyncpg.Record]:
        return await self.pool.fetch(EVENTS_AFTER, last_id, limit)

    async def events_between(self, after: int, until: int, limit: int) -> list[asyncpg.Record]:
        return await self.pool.fetch(EVENTS_BETWEEN, after, until, limit)

    async def events_pending_after(self, last_id: int) -> bool:
        return await self.pool.fetchval(EVENTS_PENDING_AFTER, last_id)

    async def last_event_id(self) -> int:
        return await self.pool.fetchval(LAST_EVENT_ID)

    async def counts(self) -> list[asyncpg.Record]:
        return await self.pool.fetch(COUNT_BY_QUEUE_AND_STATUS)

    async def finishes_since(self, seconds: float, now: datetime | None = None) -> list[asyncpg.Record]:
        return await self.pool.fetch(FINISHES_SINCE, now, seconds)

    async def run_maintenance(self, retention_seconds: float, finishes_window_seconds: float, batch: int) -> dict[str, int] | None:
        """Fold counters and prune old rows, if no other node is doing it now; returns counts or None."""
        async with self.pool.acquire() as connection, connection.transaction():
            if not await connection.fetchval(TRY_MAINTENANCE_LOCK, MAINTENANCE_LOCK):
                return None
            folded = await connection.execute(FOLD_COUNT_DELTAS)
            finishes = await connection.execute(PRUNE_FINISHES, None, finishes_window_seconds)
            events = await connection.execute(PRUNE_EVENTS, None, retention_seconds, batch)
        return {
            "counts_folded": _row_count(folded),
            "finishes_pruned": _row_count(finishes),
            "events_pruned": _row_count(events),
        }

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")


def _row_count(status: str) -> int:
    """Return the row count from a command status such as `DELETE 12` or `INSERT 0 3`."""
    return int(status.rsplit(" ", 1)[-1])
