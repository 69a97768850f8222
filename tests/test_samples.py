"""The original platform's three sample submissions behave as its users expect."""

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import wait_for

from jobd.api import create_app
from jobd.demo import registry as demo_registry
from jobd.node import Node


@pytest.fixture
async def demo_client(settings):
    node = await Node.open(settings.replace(node_name="demo-node"), demo_registry, migrate=False)
    await node.start()
    transport = httpx.ASGITransport(app=create_app(node))
    async with httpx.AsyncClient(transport=transport, base_url="http://jobd.test") as client:
        yield client
    await node.stop(grace_seconds=0)


async def get_job(client, job_id) -> dict:
    return (await client.get(f"/jobs/{job_id}")).json()


async def test_report_generation_is_seen_running_then_completed(demo_client):
    response = await demo_client.post(
        "/jobs",
        json={
            "type": "REPORT_GENERATION",
            "payload": '{"userId": 123, "format": "PDF"}',
            "retryPolicy": {"maxRetries": 3, "backoffSeconds": 10},
        },
    )
    assert response.status_code == 201
    job_id = response.json()["id"]

    async def status_is(status):
        return (await get_job(demo_client, job_id))["status"] == status

    await wait_for(lambda: status_is("RUNNING"), message="REPORT_GENERATION to be RUNNING")
    await wait_for(lambda: status_is("COMPLETED"), message="REPORT_GENERATION to complete")

    job = await get_job(demo_client, job_id)
    assert job["payload"] == {"userId": 123, "format": "PDF"}
    assert 0.9 <= job["attempts"][0]["durationMs"] / 1000 <= 2.0
    assert job["result"]["userId"] == 123


async def test_data_sync_waits_for_its_time(demo_client):
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    response = await demo_client.post(
        "/jobs",
        json={"type": "DATA_SYNC", "payload": '{"source": "S3", "target": "BigQuery"}', "scheduleAt": at.strftime("%Y-%m-%dT%H:%M:%SZ")},
    )
    job_id = response.json()["id"]
    assert response.json()["status"] == "PENDING"

    async def started():
        job = await get_job(demo_client, job_id)
        return job["startedAt"] is not None and job

    job = await wait_for(started, timeout=15, message="DATA_SYNC to start")
    assert 0 <= (datetime.fromisoformat(job["startedAt"]) - at).total_seconds() <= 1.0

    async def completed():
        return (await get_job(demo_client, job_id))["status"] == "COMPLETED"

    await wait_for(completed, message="DATA_SYNC to complete")


@pytest.mark.slow
async def test_always_fail_makes_six_attempts_with_doubling_waits(demo_client):
    started = time.monotonic()
    response = await demo_client.post(
        "/jobs",
        json={"type": "ALWAYS_FAIL", "payload": '{"debug": true}', "retryPolicy": {"maxRetries": 5, "backoffSeconds": 2}},
    )
    job_id = response.json()["id"]

    async def failed():
        job = await get_job(demo_client, job_id)
        return job["status"] == "FAILED" and job

    job = await wait_for(failed, timeout=90, message="ALWAYS_FAIL to fail for good")

    attempts = job["attempts"]
    assert [attempt["attempt"] for attempt in attempts] == [1, 2, 3, 4, 5, 6]
    for attempt in attempts:
        assert attempt["outcome"] == "FAILED"
        assert attempt["startedAt"] and attempt["finishedAt"]
        assert "ALWAYS_FAIL fails on purpose" in attempt["error"]
    waits = [
        (datetime.fromisoformat(later["startedAt"]) - datetime.fromisoformat(earlier["finishedAt"])).total_seconds()
        for earlier, later in zip(attempts, attempts[1:])
    ]
    for wait, expected in zip(waits, [2, 4, 8, 16, 32]):
        assert expected <= wait <= expected + 1, f"waits {waits}"
    assert time.monotonic() - started < 75
