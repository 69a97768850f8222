"""Recovery: expired leases are rescued, lost Redis ids pushed again, counters folded."""

from datetime import UTC, datetime, timedelta

from conftest import wait_for

from jobd.recovery import Recovery
from jobd.validation import parse_job


def new_job(node, job_type="NOOP", **fields):
    return parse_job({"type": job_type, **fields}, node.registry, 1024)


async def claim_as(store, job, node_name, lease_seconds=30):
    await store.pool.execute("UPDATE jobs SET status = 'QUEUED', queued_at = now() WHERE id = $1", job.id)
    return await store.claim([job.id], node_name, lease_seconds)


async def test_expired_lease_is_rescued_with_retry(make_node, store, broker):
    node = await make_node(start_loops=False)
    job = new_job(node, retryPolicy={"maxRetries": 2, "backoffSeconds": 10})
    await store.insert_jobs([job])
    await claim_as(store, job, "dead-node")

    recovery = Recovery(store, broker, node.settings)
    early = await recovery.rescue_expired(now=datetime.now(UTC) + timedelta(seconds=10))
    rescued = await recovery.rescue_expired(now=datetime.now(UTC) + timedelta(seconds=60))

    assert early == 0
    assert rescued == 1
    row = await store.get_job(job.id)
    assert row["status"] == "PENDING"
    assert row["node"] is None
    attempts = await store.get_attempts(job.id)
    assert attempts[0]["outcome"] == "RESCUED"
    assert "dead-node" in attempts[0]["error"]


async def test_rescue_of_last_attempt_fails_job(make_node, store, broker):
    node = await make_node(start_loops=False)
    job = new_job(node, retryPolicy={"maxRetries": 0, "backoffSeconds": 10})
    await store.insert_jobs([job])
    await claim_as(store, job, "dead-node")

    await Recovery(store, broker, node.settings).rescue_expired(now=datetime.now(UTC) + timedelta(minutes=5))

    assert (await store.get_job(job.id))["status"] == "FAILED"


async def test_late_finish_after_rescue_is_discarded(make_node, store, broker):
    from jobd.models import Outcome, Status
    from jobd.store import AttemptEnd

    node = await make_node(start_loops=False)
    job = new_job(node, retryPolicy={"maxRetries": 2, "backoffSeconds": 0})
    await store.insert_jobs([job])
    await claim_as(store, job, "slow-node")
    await Recovery(store, broker, node.settings).rescue_expired(now=datetime.now(UTC) + timedelta(minutes=5))

    persisted = await store.finish([AttemptEnd(job.id, 1, "slow-node", Status.COMPLETED, Outcome.COMPLETED, result=1)])

    assert persisted == []
    assert (await store.get_job(job.id))["status"] == "PENDING"


async def test_lost_redis_ids_are_pushed_again(make_node, store, broker):
    node = await make_node(start_loops=False)
    jobs = [new_job(node) for _ in range(5)]
    await node.submit(jobs)
    await broker.client.delete(broker.queue_key("default"))

    recovery = Recovery(store, broker, node.settings)
    too_soon = await recovery.requeue_lost()
    pushed = await recovery.requeue_lost(now=datetime.now(UTC) + timedelta(minutes=1))

    assert too_soon == 0
    assert pushed == 5
    assert await broker.size("default") == 5
    assert await recovery.requeue_lost(now=datetime.now(UTC) + timedelta(minutes=1)) == 0


async def test_rescued_job_runs_again(make_node, store):
    node = await make_node()
    job = new_job(node, retryPolicy={"maxRetries": 2, "backoffSeconds": 0})
    await store.insert_jobs([job])
    await claim_as(store, job, "dead-node", lease_seconds=0.2)

    async def completed():
        row = await store.get_job(job.id)
        return row["status"] == "COMPLETED"

    await wait_for(completed, message="rescued job to run again")
    assert (await store.get_job(job.id))["attempt"] == 2


async def test_maintenance_folds_counts(make_node, store, broker):
    node = await make_node(start_loops=False)
    await store.insert_jobs([new_job(node) for _ in range(4)])

    before = {(row["queue"], row["status"]): row["count"] for row in await store.counts()}
    result = await Recovery(store, broker, node.settings).run_once()
    after = {(row["queue"], row["status"]): row["count"] for row in await store.counts()}

    assert result.maintenance["counts_folded"] >= 1
    assert before == after == {("default", "QUEUED"): 4}
    assert await store.pool.fetchval("SELECT count(*) FROM job_count_deltas") == 0


async def test_old_events_are_pruned(make_node, store, broker):
    node = await make_node(start_loops=False, event_retention_hours=1)
    await store.insert_jobs([new_job(node) for _ in range(3)])
    await store.pool.execute("UPDATE job_events SET at = now() - interval '2 hours'")

    result = await Recovery(store, broker, node.settings).run_once()

    assert result.maintenance["events_pruned"] == 3
