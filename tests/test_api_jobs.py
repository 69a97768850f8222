"""The jobs API: submit, read, list, cancel, retry and delete."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from apps import probe
from conftest import job_body, wait_for

from jobd.models import Status


async def _status(client, job_id) -> str:
    return (await client.get(f"/jobs/{job_id}")).json()["status"]


async def _has_status(client, job_id, status: str) -> bool:
    return await _status(client, job_id) == status


async def test_submit_returns_the_job(client):
    response = await client.post("/jobs", json=job_body("NOOP", payload={"a": 1}, queue="default", priority=5))

    assert response.status_code == 201
    job = response.json()
    assert uuid.UUID(job["id"]).version == 7
    assert job["type"] == "NOOP"
    assert job["payload"] == {"a": 1}
    assert job["status"] == "QUEUED"
    assert job["priority"] == 5
    assert job["retryMaxAttempts"] == 3
    assert job["retryBackoffSeconds"] == 30
    assert job["createdAt"].endswith("Z")
    assert response.headers["location"] == f"/jobs/{job['id']}"


async def test_payload_string_is_stored_as_json(client):
    response = await client.post("/jobs", json=job_body("NOOP", payload='{"userId": 123, "format": "PDF"}'))

    assert response.json()["payload"] == {"userId": 123, "format": "PDF"}
    stored = await client.get(f"/jobs/{response.json()['id']}")
    assert stored.json()["payload"] == {"userId": 123, "format": "PDF"}


async def test_payload_may_be_any_json_value(client):
    for payload in ([1, 2], 42, None, "[]", True):
        response = await client.post("/jobs", json={"type": "NOOP", "payload": payload})
        assert response.status_code == 201


async def test_scheduled_job_is_pending(client, node):
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    response = await client.post("/jobs", json=job_body("NOOP", scheduleAt=at))

    job = response.json()
    assert job["status"] == "PENDING"
    assert datetime.fromisoformat(job["scheduleAt"]) == datetime.fromisoformat(at)


async def test_schedule_in_the_past_runs_now(client):
    response = await client.post("/jobs", json=job_body("NOOP", scheduleAt="2020-01-01T00:00:00+02:00"))

    assert response.json()["status"] == "QUEUED"
    await wait_for(lambda: _has_status(client, response.json()["id"], "COMPLETED"), message="job to complete")


async def test_get_job_shows_attempts(client):
    job_id = (await client.post("/jobs", json=job_body("FAIL", retryPolicy={"maxRetries": 1, "backoffSeconds": 0}))).json()["id"]

    async def failed():
        return (await _status(client, job_id)) == "FAILED"

    await wait_for(failed, message="FAIL job to fail for good")
    job = (await client.get(f"/jobs/{job_id}")).json()
    assert job["attempt"] == 2
    assert [a["attempt"] for a in job["attempts"]] == [1, 2]
    for attempt in job["attempts"]:
        assert attempt["outcome"] == "FAILED"
        assert attempt["startedAt"] is not None
        assert attempt["finishedAt"] is not None
        assert attempt["durationMs"] >= 0
        assert "ValueError: boom" in attempt["error"]
        assert "Traceback" in attempt["traceback"]
    assert job["lastError"].startswith("ValueError: boom on attempt 2")


async def test_missing_job_is_404(client):
    response = await client.get(f"/jobs/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_list_is_newest_first_with_cursor(make_node, store):
    node = await make_node(start_loops=False)
    from jobd.validation import parse_job

    jobs = [parse_job({"type": "NOOP", "payload": {"n": n}}, node.registry, 1024) for n in range(7)]
    for job in jobs:
        await node.store.insert_jobs([job])
    import httpx

    from jobd.api import create_app

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(node)), base_url="http://t") as client:
        first = (await client.get("/jobs?limit=3")).json()
        second = (await client.get(f"/jobs?limit=3&cursor={first['nextCursor']}")).json()
        third = (await client.get(f"/jobs?limit=3&cursor={second['nextCursor']}")).json()

    seen = [job["payload"]["n"] for page in (first, second, third) for job in page["jobs"]]
    assert seen == [6, 5, 4, 3, 2, 1, 0]
    assert third["nextCursor"] is None


async def test_list_filters(client):
    await client.post("/jobs", json=job_body("GATE", queue="other"))
    await client.post("/jobs", json=job_body("FAIL", queue="other", scheduleAt="2999-01-01T00:00:00Z"))
    await client.post("/jobs", json=job_body("NOOP", scheduleAt="2999-01-01T00:00:00Z"))

    by_type = (await client.get("/jobs?type=FAIL")).json()["jobs"]
    by_queue = (await client.get("/jobs?queue=other")).json()["jobs"]
    by_status = (await client.get("/jobs?status=pending")).json()["jobs"]
    combined = (await client.get("/jobs?status=PENDING&queue=default")).json()["jobs"]

    assert [job["type"] for job in by_type] == ["FAIL"]
    assert sorted(job["type"] for job in by_queue) == ["FAIL", "GATE"]
    assert sorted(job["type"] for job in by_status) == ["FAIL", "NOOP"]
    assert [job["type"] for job in combined] == ["NOOP"]


async def test_list_page_size_is_bounded(client):
    response = await client.get("/jobs?limit=500")

    assert response.status_code == 400


async def test_cancel_pending_job(client):
    job_id = (await client.post("/jobs", json=job_body("NOOP", scheduleAt="2999-01-01T00:00:00Z"))).json()["id"]

    response = await client.post(f"/jobs/{job_id}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"


async def test_cancel_running_job_stops_its_handler(client, node):
    job_id = (await client.post("/jobs", json=job_body("GATE"))).json()["id"]
    await wait_for(lambda: uuid.UUID(job_id) in probe.started, message="GATE job to start")

    response = await client.post(f"/jobs/{job_id}/cancel")

    assert response.json()["status"] == "CANCELLED"
    await wait_for(lambda: uuid.UUID(job_id) not in node.worker.running, message="worker to drop the cancelled job")
    job = (await client.get(f"/jobs/{job_id}")).json()
    assert job["status"] == "CANCELLED"
    assert job["attempts"][0]["outcome"] == "CANCELLED"


async def test_cancel_finished_job_is_409(client):
    job_id = (await client.post("/jobs", json=job_body("NOOP"))).json()["id"]
    await wait_for(lambda: _has_status(client, job_id, "COMPLETED"), message="job to complete")

    response = await client.post(f"/jobs/{job_id}/cancel")

    assert response.status_code == 409
    assert "COMPLETED" in response.json()["error"]["message"]


async def test_retry_failed_job_gets_fresh_budget(client):
    job_id = (await client.post("/jobs", json=job_body("FAIL", retryPolicy={"maxRetries": 0, "backoffSeconds": 0}))).json()["id"]
    await wait_for(lambda: _has_status(client, job_id, "FAILED"), message="job to fail")

    response = await client.post(f"/jobs/{job_id}/retry")

    assert response.status_code == 200
    assert response.json()["maxAttempts"] == 2
    await wait_for(lambda: _has_status(client, job_id, "FAILED"), message="retried job to fail again")
    job = (await client.get(f"/jobs/{job_id}")).json()
    assert [a["attempt"] for a in job["attempts"]] == [1, 2]


async def test_retry_queued_job_is_409(client):
    job_id = (await client.post("/jobs", json=job_body("NOOP", scheduleAt="2999-01-01T00:00:00Z"))).json()["id"]

    response = await client.post(f"/jobs/{job_id}/retry")

    assert response.status_code == 409
    assert "PENDING" in response.json()["error"]["message"]


async def test_delete_only_terminal_jobs(client):
    job_id = (await client.post("/jobs", json=job_body("NOOP", scheduleAt="2999-01-01T00:00:00Z"))).json()["id"]

    refused = await client.delete(f"/jobs/{job_id}")
    await client.post(f"/jobs/{job_id}/cancel")
    deleted = await client.delete(f"/jobs/{job_id}")

    assert refused.status_code == 409
    assert deleted.status_code == 204
    assert (await client.get(f"/jobs/{job_id}")).status_code == 404
    assert (await client.delete(f"/jobs/{job_id}")).status_code == 404


async def test_batch_submit(client):
    response = await client.post("/jobs/batch", json={"jobs": [job_body("NOOP", payload={"n": n}) for n in range(50)]})

    assert response.status_code == 201
    ids = [job["id"] for job in response.json()["jobs"]]
    assert len(set(ids)) == 50

    async def all_done():
        jobs = (await client.get("/jobs?status=COMPLETED&limit=100")).json()["jobs"]
        return len(jobs) == 50

    await wait_for(all_done, message="50 jobs to complete")


async def test_types_lists_registry(client):
    response = await client.get("/types")

    assert "NOOP" in response.json()["types"]


async def test_health_reports_both_servers(client):
    response = await client.get("/health")

    body = response.json()
    assert response.status_code == 200
    assert body["postgres"] == "ok"
    assert body["redis"] == "ok"


async def test_stats_counts_by_status_and_queue(client, node):
    for _ in range(3):
        await client.post("/jobs", json=job_body("NOOP"))
    await client.post("/jobs", json=job_body("NOOP", queue="later", scheduleAt="2999-01-01T00:00:00Z"))

    async def three_completed():
        stats = (await client.get("/stats")).json()
        return stats["counts"]["COMPLETED"] == 3 and stats

    stats = await wait_for(three_completed, message="stats to count 3 completed jobs")
    assert stats["counts"]["PENDING"] == 1
    assert stats["queues"]["later"]["PENDING"] == 1
    assert sum(bucket["completed"] for bucket in stats["throughput"]["buckets"]) == 3


async def test_responses_carry_security_headers(client):
    response = await client.get("/health")

    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_running_status_is_visible(client):
    job_id = (await client.post("/jobs", json=job_body("GATE"))).json()["id"]
    await wait_for(lambda: uuid.UUID(job_id) in probe.started, message="GATE job to start")

    job = (await client.get(f"/jobs/{job_id}")).json()

    assert job["status"] == Status.RUNNING
    assert job["startedAt"] is not None
    assert job["attempts"][0]["outcome"] == "RUNNING"
    probe.release(uuid.UUID(job_id))
    await wait_for(lambda: _has_status(client, job_id, "COMPLETED"), message="released job to complete")


async def test_result_is_stored(client):
    job_id = (await client.post("/jobs", json=job_body("SLEEP", payload={"seconds": 0.01}))).json()["id"]
    await wait_for(lambda: _has_status(client, job_id, "COMPLETED"), message="job to complete")

    job = (await client.get(f"/jobs/{job_id}")).json()

    assert job["result"] == {"slept": 0.01}
    assert job["finishedAt"] is not None


async def test_concurrent_submissions_are_all_stored(client, store):
    responses = await asyncio.gather(*(client.post("/jobs", json=job_body("NOOP")) for _ in range(100)))

    assert {response.status_code for response in responses} == {201}
    assert await store.pool.fetchval("SELECT count(*) FROM jobs") == 100
