"""The scheduler: due jobs move to QUEUED in batches and start on time."""

import time
from datetime import UTC, datetime, timedelta

from apps import probe
from conftest import wait_for

from jobd.scheduler import Scheduler
from jobd.validation import parse_job


def scheduled(node, at: datetime, job_type="NOOP"):
    return parse_job({"type": job_type, "scheduleAt": at.isoformat()}, node.registry, 1024)


async def test_run_once_moves_only_due_jobs(make_node, store, broker):
    node = await make_node(start_loops=False)
    now = datetime.now(UTC)
    due = [scheduled(node, now + timedelta(minutes=5)) for _ in range(3)]
    later = [scheduled(node, now + timedelta(minutes=15)) for _ in range(2)]
    await store.insert_jobs(due + later)

    moved = await Scheduler(store, broker, node.settings).run_once(now=now + timedelta(minutes=10))

    assert moved == 3
    statuses = dict(await store.pool.fetch("SELECT id, status FROM jobs"))
    assert all(statuses[job.id] == "QUEUED" for job in due)
    assert all(statuses[job.id] == "PENDING" for job in later)
    assert await broker.size("default") == 3


async def test_run_once_works_in_batches(make_node, store, broker):
    node = await make_node(start_loops=False, batch_size=7)
    now = datetime.now(UTC)
    await store.insert_jobs([scheduled(node, now + timedelta(minutes=1)) for _ in range(30)])

    moved = await Scheduler(store, broker, node.settings).run_once(now=now + timedelta(minutes=2))

    assert moved == 30
    assert await broker.size("default") == 30


async def test_scheduled_job_starts_within_a_second(node, store):
    at = datetime.now(UTC) + timedelta(seconds=2)
    job = scheduled(node, at)
    await node.submit([job])

    await wait_for(lambda: probe.runs[job.id] == 1, timeout=10, message="scheduled job to run")

    row = await store.get_job(job.id)
    lateness = (row["started_at"] - at).total_seconds()
    assert 0 <= lateness < 1.0


async def test_retry_wakes_the_scheduler(node, store):
    job = parse_job({"type": "FAIL", "retryPolicy": {"maxRetries": 1, "backoffSeconds": 1}}, node.registry, 1024)
    started = time.monotonic()
    await node.submit([job])

    await wait_for(lambda: probe.runs[job.id] == 2, timeout=10, message="second attempt")

    # The retry is due one second after the first failure; a fixed poll would add up to 5 s.
    assert time.monotonic() - started < 2.5
