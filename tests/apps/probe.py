"""Handlers that tests use to observe jobd: they record runs, block on demand and misbehave.

TRACE writes one row per run into `probe_runs` through its own connection, so a test can
check from outside a killed process that no job ran twice at once.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter, defaultdict
from uuid import UUID

import anyio
import asyncpg

from jobd import JobContext, Registry

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS probe_runs (
    job_id      uuid        NOT NULL,
    attempt     integer     NOT NULL,
    pid         integer     NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz
)
"""

registry = Registry()
runs: Counter[UUID] = Counter()
gates: dict[UUID, asyncio.Event] = defaultdict(asyncio.Event)
started: set[UUID] = set()
threads: list[str] = []
_pool: asyncpg.Pool | None = None
# TRACE runs that start together must share one pool, not each create one.
_pool_lock = asyncio.Lock()


def reset() -> None:
    runs.clear()
    gates.clear()
    started.clear()
    threads.clear()


def release(job_id: UUID) -> None:
    gates[job_id].set()


@registry.handler("NOOP")
async def noop(job: JobContext) -> dict:
    runs[job.id] += 1
    return {"ok": True}


@registry.handler("SLEEP")
async def sleep(job: JobContext) -> dict:
    runs[job.id] += 1
    await anyio.sleep(float(job.payload.get("seconds", 0.1)))
    return {"slept": job.payload.get("seconds", 0.1)}


@registry.handler("GATE")
async def gate(job: JobContext) -> str:
    """Block until the test calls `release(job.id)`."""
    runs[job.id] += 1
    started.add(job.id)
    await gates[job.id].wait()
    return "released"


@registry.handler("PROGRESS")
async def progress(job: JobContext) -> None:
    for percent in (25, 50, 100):
        await job.progress(percent, f"step {percent}")


@registry.handler("FAIL")
async def fail(job: JobContext) -> None:
    runs[job.id] += 1
    raise ValueError(f"boom on attempt {job.attempt}")


@registry.handler("SYNC_SLEEP")
def sync_sleep(job: JobContext) -> dict:
    runs[job.id] += 1
    threads.append(threading.current_thread().name)
    time.sleep(float(job.payload.get("seconds", 0.2)))
    return {"thread": threading.current_thread().name}


@registry.handler("BAD_RESULT")
async def bad_result(job: JobContext) -> object:
    return object()


@registry.handler("TRACE")
async def trace(job: JobContext) -> dict:
    """Record the run's start and end in PostgreSQL, sleeping `seconds` in between."""
    global _pool
    async with _pool_lock:
        if _pool is None:
            _pool = await asyncpg.create_pool(os.environ["JOBD_DATABASE_URL"], min_size=1, max_size=4)
    await _pool.execute("INSERT INTO probe_runs (job_id, attempt, pid) VALUES ($1, $2, $3)", job.id, job.attempt, os.getpid())
    await anyio.sleep(float(job.payload.get("seconds", 0.1)))
    await _pool.execute(
        "UPDATE probe_runs SET finished_at = clock_timestamp() WHERE job_id = $1 AND attempt = $2 AND pid = $3",
        job.id,
        job.attempt,
        os.getpid(),
    )
    return {"pid": os.getpid()}
