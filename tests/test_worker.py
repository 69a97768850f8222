"""The worker pool: claims, handlers, timeouts, bounds, priorities and graceful stop."""

import asyncio
import time
import uuid

from apps import probe
from conftest import wait_for

from jobd.validation import parse_job


def new_job(node, job_type="NOOP", **fields):
    return parse_job({"type": job_type, **fields}, node.registry, node.settings.max_payload_bytes)


async def job_row(store, job_id):
    return await store.get_job(job_id)


async def has_status(store, job_id, status) -> bool:
    row = await store.get_job(job_id)
    return row is not None and row["status"] == status


async def test_job_runs_to_completion(node, store):
    job = new_job(node, "SLEEP", payload={"seconds": 0.01})
    await node.submit([job])

    await wait_for(lambda: has_status(store, job.id, "COMPLETED"), message="job to complete")

    row = await job_row(store, job.id)
    assert row["result"] == {"slept": 0.01}
    assert row["attempt"] == 1
    assert row["node"] is None
    assert row["lease_expires_at"] is None
    assert probe.runs[job.id] == 1


async def test_sync_handler_runs_in_a_thread(node, store):
    job = new_job(node, "SYNC_SLEEP", payload={"seconds": 0.5})
    await node.submit([job])
    await wait_for(lambda: probe.threads, message="sync handler to start")

    # The loop must stay responsive while the handler sleeps in its thread.
    started = time.monotonic()
    await asyncio.sleep(0.01)
    assert time.monotonic() - started < 0.2

    await wait_for(lambda: has_status(store, job.id, "COMPLETED"), message="sync job to complete")
    assert probe.threads[0] != "MainThread"


async def test_timeout_fails_the_attempt(node, store):
    job = new_job(node, "GATE", timeoutSeconds=1, retryPolicy={"maxRetries": 0, "backoffSeconds": 0})
    await node.submit([job])

    await wait_for(lambda: has_status(store, job.id, "FAILED"), message="job to time out")

    attempts = await store.get_attempts(job.id)
    assert attempts[0]["outcome"] == "TIMED_OUT"
    assert "timed out after 1 s" in attempts[0]["error"]


async def test_result_that_is_not_json_fails(node, store):
    job = new_job(node, "BAD_RESULT", retryPolicy={"maxRetries": 0, "backoffSeconds": 0})
    await node.submit([job])

    await wait_for(lambda: has_status(store, job.id, "FAILED"), message="job to fail")

    row = await job_row(store, job.id)
    assert "not JSON-serialisable" in row["last_error"]


async def test_failure_schedules_retry_with_backoff(node, store):
    job = new_job(node, "FAIL", retryPolicy={"maxRetries": 2, "backoffSeconds": 60})
    await node.submit([job])

    await wait_for(lambda: has_status(store, job.id, "PENDING"), message="retry to be scheduled")

    row = await job_row(store, job.id)
    delay = (row["schedule_at"] - row["updated_at"]).total_seconds()
    assert 59 <= delay <= 61
    assert row["attempt"] == 1


async def test_global_concurrency_bound(make_node, store):
    node = await make_node(concurrency=3)
    jobs = [new_job(node, "GATE") for _ in range(6)]
    await node.submit(jobs)

    await wait_for(lambda: len(probe.started) == 3, message="three jobs to start")
    # A fourth job must not start while three hold every slot; give the fetcher a chance.
    await asyncio.sleep(0.3)
    assert len(probe.started) == 3

    for job in jobs:
        probe.release(job.id)
    await wait_for(lambda: len(probe.started) == 6, message="the rest to start")


async def test_per_queue_bound(make_node, store):
    node = await make_node(concurrency=10, queues={"small": 1, "big": None})
    small = [new_job(node, "GATE", queue="small") for _ in range(3)]
    big = [new_job(node, "GATE", queue="big") for _ in range(3)]
    await node.submit(small + big)

    await wait_for(lambda: len(probe.started) == 4, message="one small and three big jobs to start")
    await asyncio.sleep(0.3)
    assert len(probe.started & {job.id for job in small}) == 1

    for job in small + big:
        probe.release(job.id)
    await wait_for(lambda: len(probe.started) == 6, message="all jobs to start")


async def test_higher_priority_runs_first(make_node, store):
    producer = await make_node(run_worker=False)
    low = [new_job(producer, "NOOP", priority=0) for _ in range(5)]
    high = [new_job(producer, "NOOP", priority=10) for _ in range(5)]
    await producer.submit(low)
    await producer.submit(high)

    await make_node(concurrency=1, batch_size=1)
    await wait_for(
        lambda: store.pool.fetchval("SELECT count(*) = 10 FROM jobs WHERE status = 'COMPLETED'"),
        message="all jobs to complete",
    )

    order = await store.pool.fetch("SELECT id FROM jobs ORDER BY started_at")
    assert {row["id"] for row in order[:5]} == {job.id for job in high}


async def test_duplicate_ids_run_once(node, store, broker):
    jobs = [new_job(node, "NOOP") for _ in range(50)]
    await node.submit(jobs)
    await broker.push(("default", job.id, 0.0) for job in jobs)

    await wait_for(
        lambda: store.pool.fetchval("SELECT count(*) = 50 FROM jobs WHERE status = 'COMPLETED'"),
        message="all jobs to complete",
    )
    async def drained():
        return await broker.size("default") == 0

    await wait_for(drained, message="duplicates to be drained")

    assert all(probe.runs[job.id] == 1 for job in jobs)


async def test_concurrent_claims_win_once(node, store):
    producer = node
    jobs = [new_job(producer, "NOOP", scheduleAt="2999-01-01T00:00:00Z") for _ in range(50)]
    await store.insert_jobs(jobs)
    ids = [job.id for job in jobs]
    await store.pool.execute("UPDATE jobs SET status = 'QUEUED', queued_at = now() WHERE id = ANY($1)", ids)

    results = await asyncio.gather(*(store.claim(ids, f"claimer-{n}", 30) for n in range(20)))

    claimed = [row["id"] for rows in results for row in rows]
    assert sorted(claimed) == sorted(ids)


async def test_graceful_stop_hands_back_unfinished(make_node, store):
    node = await make_node(shutdown_grace_seconds=0.5)
    quick = new_job(node, "SLEEP", payload={"seconds": 0.05})
    stuck = new_job(node, "GATE")
    await node.submit([quick, stuck])
    await wait_for(lambda: stuck.id in probe.started, message="GATE job to start")

    await node.stop()

    stuck_row = await job_row(store, stuck.id)
    assert stuck_row["status"] == "QUEUED"
    assert stuck_row["attempt"] == 0
    assert await store.get_attempts(stuck.id) == []
    assert (await job_row(store, quick.id))["status"] == "COMPLETED"


async def test_lost_lease_stops_the_handler(node, store):
    job = new_job(node, "GATE")
    await node.submit([job])
    await wait_for(lambda: job.id in probe.started, message="GATE job to start")

    # Another node takes the job over, as recovery would after an expired lease.
    await store.pool.execute("UPDATE jobs SET node = 'someone-else' WHERE id = $1", job.id)

    await wait_for(lambda: job.id not in node.worker.running, message="worker to drop the job")
    assert probe.runs[job.id] == 1


async def test_unknown_type_on_worker_fails_attempt(node, store):
    job = new_job(node, "NOOP", retryPolicy={"maxRetries": 0, "backoffSeconds": 0})
    await store.insert_jobs([job])
    await store.pool.execute("UPDATE jobs SET type = 'GONE' WHERE id = $1", job.id)
    await node.push_ready([{"queue": "default", "id": job.id, "priority": 0, "schedule_at": (await job_row(store, job.id))["schedule_at"]}])

    await wait_for(lambda: has_status(store, job.id, "FAILED"), message="job to fail")
    assert "no handler for job type 'GONE'" in (await job_row(store, job.id))["last_error"]


async def test_jobs_of_unserved_queue_wait(node, store):
    job = new_job(node, "NOOP", queue="elsewhere")
    await node.submit([job])

    await asyncio.sleep(0.3)  # nothing serves the queue, so nothing can signal; a short look suffices
    assert (await job_row(store, job.id))["status"] == "QUEUED"
    assert uuid.UUID(str(job.id)) not in probe.runs


async def test_stop_with_several_queues(make_node, store):
    node = await make_node(concurrency=2, queues={"default": None, "reports": None, "emails": 1})

    await asyncio.wait_for(node.stop(grace_seconds=0), 10)

    assert node.worker.capacity.free == 2


async def test_idle_queue_does_not_starve_others(make_node, store):
    node = await make_node(concurrency=4, batch_size=100, queues={"idle": None, "busy": None})
    jobs = [new_job(node, "GATE", queue="busy") for _ in range(3)]
    await node.submit(jobs)

    await wait_for(lambda: len(probe.started) == 3, message="three busy-queue jobs to start while the idle queue waits")

    for job in jobs:
        probe.release(job.id)
