"""The probe handlers plus TRACE_ENDS, for fault tests that cancel a run in a live process.

TRACE leaves `finished_at` NULL when its run is cancelled, which is right for a killed process
but hides when a cancelled run in a live one ended. TRACE_ENDS also stamps `finished_at` when
it is cancelled, so a test can prove that the next attempt started only after that.
"""

from __future__ import annotations

import asyncio
import os

import anyio
import asyncpg

from apps import probe
from jobd import JobContext, Registry

registry = Registry()
for _job_type in probe.registry.types:
    registry.register(_job_type, probe.registry.get(_job_type).handler)

# Tests in this process set `pool` themselves. A worker subprocess creates it on first use.
pool: asyncpg.Pool | None = None
_pool_lock = asyncio.Lock()


async def _get_pool() -> asyncpg.Pool:
    global pool
    async with _pool_lock:
        if pool is None:
            pool = await asyncpg.create_pool(os.environ["JOBD_DATABASE_URL"], min_size=1, max_size=4)
    return pool


@registry.handler("TRACE_ENDS")
async def trace_ends(job: JobContext) -> dict:
    """Record the run's start and its end, also when cancelled, sleeping `seconds` in between."""
    runs = await _get_pool()
    await runs.execute("INSERT INTO probe_runs (job_id, attempt, pid) VALUES ($1, $2, $3)", job.id, job.attempt, os.getpid())
    try:
        await anyio.sleep(float(job.payload.get("seconds", 0.1)))
    finally:
        # Shielded, so that the end is recorded even while the task is being cancelled.
        with anyio.CancelScope(shield=True):
            await runs.execute(
                "UPDATE probe_runs SET finished_at = clock_timestamp() WHERE job_id = $1 AND attempt = $2 AND pid = $3",
                job.id,
                job.attempt,
                os.getpid(),
            )
    return {"pid": os.getpid()}
