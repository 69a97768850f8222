"""Every kind of bad input gets a 4xx naming the field, and nothing is stored."""

import pytest

from conftest import job_body

LONG_TYPE = "X" * 101



BAD_JOBS = [
    pytest.param({}, 400, "type", id="type missing"),
    pytest.param({"type": ""}, 400, "type", id="type empty"),
    pytest.param({"type": "   "}, 400, "type", id="type blank"),
    pytest.param({"type": LONG_TYPE}, 400, "type", id="type over-long"),
    pytest.param({"type": "NOT_REGISTERED"}, 400, "type", id="type unknown"),
    pytest.param({"type": 12}, 400, "type", id="type a number"),
    pytest.param({"type": "NO\u0000OP"}, 400, "type", id="type with NUL"),
    pytest.param({"type": "NOOP", "payload": "{not json"}, 400, "payload", id="payload string not JSON"),
    pytest.param({"type": "NOOP", "payload": {"text": "a\u0000b"}}, 400, "payload", id="payload with NUL"),
    pytest.param({"type": "NOOP", "payload": '{"text": "a\\u0000b"}'}, 400, "payload", id="payload string with NUL"),
    pytest.param({"type": "NOOP", "scheduleAt": "2026-12-04T20:00:00"}, 400, "scheduleAt", id="scheduleAt without offset"),
    pytest.param({"type": "NOOP", "scheduleAt": "tomorrow"}, 400, "scheduleAt", id="scheduleAt not a date"),
    pytest.param({"type": "NOOP", "scheduleAt": 1733342400}, 400, "scheduleAt", id="scheduleAt a number"),
    pytest.param({"type": "NOOP", "retryPolicy": {"maxRetries": -1}}, 400, "retryPolicy.maxRetries", id="maxRetries negative"),
    pytest.param({"type": "NOOP", "retryPolicy": {"maxRetries": 1.5}}, 400, "retryPolicy.maxRetries", id="maxRetries fractional"),
    pytest.param({"type": "NOOP", "retryPolicy": {"maxRetries": "3"}}, 400, "retryPolicy.maxRetries", id="maxRetries a string"),
    pytest.param({"type": "NOOP", "retryPolicy": {"maxRetries": True}}, 400, "retryPolicy.maxRetries", id="maxRetries a boolean"),
    pytest.param({"type": "NOOP", "retryPolicy": {"maxRetries": 101}}, 400, "retryPolicy.maxRetries", id="maxRetries over maximum"),
    pytest.param({"type": "NOOP", "retryPolicy": {"backoffSeconds": -5}}, 400, "retryPolicy.backoffSeconds", id="backoff negative"),
    pytest.param({"type": "NOOP", "retryPolicy": {"backoffSeconds": 0.5}}, 400, "retryPolicy.backoffSeconds", id="backoff fractional"),
    pytest.param({"type": "NOOP", "retryPolicy": {"backoffSeconds": "10"}}, 400, "retryPolicy.backoffSeconds", id="backoff a string"),
    pytest.param({"type": "NOOP", "retryPolicy": {"backoffSeconds": 86401}}, 400, "retryPolicy.backoffSeconds", id="backoff over maximum"),
    pytest.param({"type": "NOOP", "retryPolicy": {"backoffSeconds": 10**30}}, 400, "retryPolicy.backoffSeconds", id="backoff huge"),
    pytest.param({"type": "NOOP", "retryPolicy": {"maxRetry": 3}}, 400, "retryPolicy.maxRetry", id="retryPolicy unknown field"),
    pytest.param({"type": "NOOP", "retryPolicy": 3}, 400, "retryPolicy", id="retryPolicy not an object"),
    pytest.param({"type": "NOOP", "scheduledAt": "2026-12-04T20:00:00Z"}, 400, "scheduledAt", id="unknown field"),
    pytest.param({"type": "NOOP", "queue": "no spaces"}, 400, "queue", id="queue invalid"),
    pytest.param({"type": "NOOP", "queue": "q\u0000"}, 400, "queue", id="queue with NUL"),
    pytest.param({"type": "NOOP", "priority": 1001}, 400, "priority", id="priority over maximum"),
    pytest.param({"type": "NOOP", "priority": 1.5}, 400, "priority", id="priority fractional"),
    pytest.param({"type": "NOOP", "timeoutSeconds": 0}, 400, "timeoutSeconds", id="timeout zero"),
]


async def _job_count(store) -> int:
    return await store.pool.fetchval("SELECT count(*) FROM jobs")


@pytest.mark.parametrize(("body", "status", "field"), BAD_JOBS)
async def test_bad_job_is_rejected(client, store, body, status, field):
    response = await client.post("/jobs", json=body)

    assert response.status_code == status
    error = response.json()["error"]
    assert error["field"] == field
    assert field.split(".")[-1] in error["message"]
    assert await _job_count(store) == 0


async def test_unknown_type_lists_registered_types(client):
    response = await client.post("/jobs", json={"type": "NOPE"})

    message = response.json()["error"]["message"]
    assert "NOOP" in message
    assert "TRACE" in message


async def test_malformed_json_is_rejected(client, store):
    response = await client.post("/jobs", content=b'{"type": "NOOP",', headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"
    assert await _job_count(store) == 0


async def test_body_not_an_object_is_rejected(client, store):
    response = await client.post("/jobs", json=["NOOP"])

    assert response.status_code == 400
    assert await _job_count(store) == 0


async def test_payload_over_limit_is_413(client, store, node):
    limit = node.settings.max_payload_bytes
    response = await client.post("/jobs", json=job_body(payload={"blob": "x" * limit}))

    assert response.status_code == 413
    assert response.json()["error"]["field"] == "payload"
    assert await _job_count(store) == 0


async def test_payload_string_over_limit_is_413(client, store, node):
    limit = node.settings.max_payload_bytes
    response = await client.post("/jobs", json=job_body(payload='{"blob": "' + "y" * limit + '"}'))

    assert response.status_code == 413
    assert await _job_count(store) == 0


async def test_huge_body_is_413_without_reading_it_all(client, store, node):
    body = b'{"type": "NOOP", "payload": "' + b"z" * (node.settings.max_payload_bytes * 7) + b'"}'
    response = await client.post("/jobs", content=body)

    assert response.status_code == 413
    assert await _job_count(store) == 0


@pytest.mark.parametrize("path", ["/jobs/not-a-uuid", "/jobs/123/cancel", "/jobs/abc/retry", "/jobs/zz/events"])
async def test_job_id_not_a_uuid_is_400(client, path):
    method = "POST" if path.endswith(("cancel", "retry")) else "GET"
    response = await client.request(method, path)

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "id"


async def test_delete_with_bad_id_is_400(client):
    response = await client.delete("/jobs/nope")

    assert response.status_code == 400


@pytest.mark.parametrize(
    ("query", "field"),
    [("status=DONE", "status"), ("limit=0", "limit"), ("limit=201", "limit"), ("limit=ten", "limit"), ("cursor=abc", "cursor")],
)
async def test_bad_list_query_is_400(client, query, field):
    response = await client.get(f"/jobs?{query}")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize(
    "body",
    [{"jobs": []}, {"jobs": "NOOP"}, {"jobs": [{"type": "NOOP"}, {"type": "NOPE"}]}],
)
async def test_bad_batch_stores_nothing(client, store, body):
    response = await client.post("/jobs/batch", json=body)

    assert response.status_code == 400
    assert await _job_count(store) == 0


async def test_bad_batch_names_the_failing_item(client):
    response = await client.post("/jobs/batch", json={"jobs": [{"type": "NOOP"}, {"type": "NOOP", "priority": "x"}]})

    assert response.json()["error"]["field"] == "jobs[1].priority"


async def test_unknown_route_is_json_404(client):
    response = await client.get("/nope/nothing")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_wrong_method_is_405(client):
    response = await client.put("/jobs")

    assert response.status_code == 405
