"""The event stream: LISTEN/NOTIFY to SSE, in order, resumable, and safe for slow readers."""

import asyncio
import contextlib

import httpx
import pytest
from conftest import wait_for
from sse import read_messages

from jobd.events import EventFilter
from jobd.validation import parse_job


def new_job(node, job_type="NOOP", **fields):
    return parse_job({"type": job_type, **fields}, node.registry, 1024)


async def collect(url: str, count: int, headers=None, timeout: float = 15.0, params=None) -> list:
    """Read `count` job events from the stream at `url`."""
    events = []
    async with httpx.AsyncClient(timeout=timeout) as client:
        async with client.stream("GET", url, headers=headers or {}, params=params) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for message in read_messages(response):
                events.append(message)
                if len(events) >= count:
                    break
    return events


async def test_job_life_arrives_in_order(node, live_server):
    job = new_job(node, "FAIL", retryPolicy={"maxRetries": 1, "backoffSeconds": 0})
    reader = asyncio.create_task(collect(f"{live_server}/events", 6, params={"jobId": str(job.id)}))
    await wait_for(lambda: node.relay.subscribers, message="the stream to subscribe")

    await node.submit([job])
    events = await asyncio.wait_for(reader, 20)

    kinds = [message.data["kind"] for message in events]
    assert kinds == ["created", "running", "retry_scheduled", "queued", "running", "failed"]
    ids = [int(message.id) for message in events]
    assert ids == sorted(ids)
    assert all(message.event == "job" for message in events)
    assert events[-1].data["status"] == "FAILED"


async def test_last_event_id_resumes_without_gaps(node, live_server, store):
    first_jobs = [new_job(node) for _ in range(5)]
    await node.submit(first_jobs)
    await wait_for(lambda: store.pool.fetchval("SELECT count(*) = 5 FROM jobs WHERE status = 'COMPLETED'"), message="first jobs")
    everything_so_far = await store.pool.fetch("SELECT id FROM job_events ORDER BY id")
    resume_from = everything_so_far[6]["id"]

    more_jobs = [new_job(node) for _ in range(3)]
    await node.submit(more_jobs)
    await wait_for(lambda: store.pool.fetchval("SELECT count(*) = 8 FROM jobs WHERE status = 'COMPLETED'"), message="more jobs")
    expected = [row["id"] for row in await store.pool.fetch("SELECT id FROM job_events WHERE id > $1 ORDER BY id", resume_from)]

    events = await collect(f"{live_server}/events", len(expected), headers={"Last-Event-ID": str(resume_from)})

    assert [int(message.id) for message in events] == expected


async def test_resume_then_live_has_no_repeats(node, live_server, store):
    await node.submit([new_job(node) for _ in range(2)])
    await wait_for(lambda: store.pool.fetchval("SELECT count(*) = 2 FROM jobs WHERE status = 'COMPLETED'"), message="jobs")
    stored = [row["id"] for row in await store.pool.fetch("SELECT id FROM job_events ORDER BY id")]

    reader = asyncio.create_task(collect(f"{live_server}/events", len(stored) + 3, headers={"Last-Event-ID": "0"}))
    await wait_for(lambda: node.relay.subscribers, message="the stream to subscribe")
    await node.submit([new_job(node)])
    events = await asyncio.wait_for(reader, 15)

    ids = [int(message.id) for message in events]
    assert ids[: len(stored)] == stored
    assert len(ids) == len(set(ids))
    assert ids == sorted(ids)


async def test_terminated_listen_connection_loses_nothing(node, live_server, store):
    reader = asyncio.create_task(collect(f"{live_server}/events", 3 * 10))
    await wait_for(lambda: node.relay.subscribers, message="the stream to subscribe")
    await node.submit([new_job(node) for _ in range(5)])

    killed = await store.pool.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
    )
    assert killed >= 1
    await node.submit([new_job(node) for _ in range(5)])

    events = await asyncio.wait_for(reader, 20)
    kinds = [message.data["kind"] for message in events]
    assert kinds.count("created") == 10
    assert kinds.count("completed") == 10
    await wait_for(lambda: node.relay.connected.is_set(), message="relay to reconnect")


async def test_slow_subscriber_gets_resync(node):
    subscriber = node.relay.subscribe(EventFilter(), size=5)
    await node.submit([new_job(node) for _ in range(10)])

    await wait_for(lambda: subscriber.overflowed, message="the subscriber to overflow")

    assert subscriber not in node.relay.subscribers
    messages = []
    from jobd.api import Api

    async for message in Api(node)._stream(subscriber, EventFilter(), None):
        messages.append(message)
    assert [message.event for message in messages] == ["resync"]


async def test_two_hundred_subscribers_see_every_event(node, live_server):
    limits = httpx.Limits(max_connections=250, max_keepalive_connections=0)
    jobs = [new_job(node, "NOOP") for _ in range(5)]

    async def one_reader(client):
        seen = []
        async with client.stream("GET", f"{live_server}/events") as response:
            async for message in read_messages(response):
                seen.append(message.data["kind"])
                if seen.count("completed") == 5:
                    return seen
        return seen

    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        readers = [asyncio.create_task(one_reader(client)) for _ in range(200)]
        await wait_for(lambda: len(node.relay.subscribers) == 200, timeout=30, message="200 subscribers")
        await node.submit(jobs)
        results = await asyncio.wait_for(asyncio.gather(*readers), 30)

    for seen in results:
        assert seen.count("created") == 5
        assert seen.count("running") == 5
        assert seen.count("completed") == 5


async def test_filters_select_events(node, live_server):
    reader = asyncio.create_task(collect(f"{live_server}/events", 2, params={"status": "COMPLETED", "type": "SLEEP"}))
    await wait_for(lambda: node.relay.subscribers, message="the stream to subscribe")
    await node.submit([new_job(node, "NOOP"), new_job(node, "SLEEP", payload={"seconds": 0.01}), new_job(node, "SLEEP", payload={"seconds": 0.01})])

    events = await asyncio.wait_for(reader, 15)

    assert {(m.data["type"], m.data["status"]) for m in events} == {("SLEEP", "COMPLETED")}


async def test_job_events_endpoint_lists_timeline(client, node):
    job_id = (await client.post("/jobs", json={"type": "NOOP"})).json()["id"]

    async def three_events():
        events = (await client.get(f"/jobs/{job_id}/events")).json()["events"]
        return len(events) == 3 and events

    events = await wait_for(three_events, message="three events")
    assert [event["kind"] for event in events] == ["created", "running", "completed"]


async def test_stream_closes_on_shutdown(node, live_server):
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("GET", f"{live_server}/events") as response:
            await wait_for(lambda: node.relay.subscribers, message="the stream to subscribe")
            node.relay.stop()
            with contextlib.suppress(httpx.RemoteProtocolError):
                async for _ in response.aiter_lines():
                    pass
    assert not node.relay.subscribers


@pytest.mark.parametrize("header", ["abc", "-1"])
async def test_bad_last_event_id_is_400(client, header):
    response = await client.get("/events", headers={"Last-Event-ID": header})

    assert response.status_code == 400


async def test_progress_reports_become_events(node, store):
    job = new_job(node, "PROGRESS")
    await node.submit([job])

    async def completed():
        return (await store.get_job(job.id))["status"] == "COMPLETED"

    await wait_for(completed, message="PROGRESS job to complete")
    events = await store.get_job_events(job.id)
    progress = [event["data"] for event in events if event["kind"] == "progress"]
    assert progress == [{"percent": 25, "message": "step 25"}, {"percent": 50, "message": "step 50"}, {"percent": 100, "message": "step 100"}]


async def test_disconnected_client_is_removed(node, live_server):
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("GET", f"{live_server}/events"):
            await wait_for(lambda: len(node.relay.subscribers) == 1, message="the stream to subscribe")

    await wait_for(lambda: not node.relay.subscribers, message="the closed stream to unsubscribe")


async def test_idle_stream_sends_keepalive_comments(node, live_server, monkeypatch):
    import jobd.api

    monkeypatch.setattr(jobd.api, "SSE_PING_SECONDS", 0.2)
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("GET", f"{live_server}/events") as response:
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    break
    assert line.startswith(":")
