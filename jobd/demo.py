"""The sample job types of the platform jobd replaces, loaded when no `--app` is given."""

from __future__ import annotations

import anyio

from jobd.handlers import JobContext, Registry

registry = Registry()

WORK_SECONDS = 1.0


@registry.handler("REPORT_GENERATION")
async def generate_report(job: JobContext) -> dict:
    await anyio.sleep(WORK_SECONDS)
    payload = job.payload if isinstance(job.payload, dict) else {}
    return {"report": f"report-{job.id}.{str(payload.get('format', 'pdf')).lower()}", "userId": payload.get("userId")}


@registry.handler("DATA_SYNC")
async def sync_data(job: JobContext) -> dict:
    await anyio.sleep(WORK_SECONDS)
    payload = job.payload if isinstance(job.payload, dict) else {}
    return {"source": payload.get("source"), "target": payload.get("target"), "synced": True}


@registry.handler("ALWAYS_FAIL")
async def always_fail(job: JobContext) -> None:
    raise RuntimeError(f"ALWAYS_FAIL fails on purpose (attempt {job.attempt} of {job.max_attempts})")
