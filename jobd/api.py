"""The HTTP API and the dashboard's static files, as one Starlette application.

Every error body has the shape `{"error": {"code", "field", "message"}}`; an unexpected
failure returns a generic message with a request id, and the traceback goes to the log.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobd.errors import InvalidInput, JobNotFound
from jobd.events import EventFilter, event_json
from jobd.log import fields
from jobd.models import Status, iso
from jobd.store import UNAVAILABLE, JobFilter
from jobd.validation import (
    parse_body,
    parse_cursor,
    parse_job,
    parse_job_id,
    parse_limit,
    parse_status,
    parse_text_filter,
)

if TYPE_CHECKING:
    from jobd.node import Node

logger = logging.getLogger(__name__)

BATCH_LIMIT = 1_000
SSE_PING_SECONDS = 15
REPLAY_PAGE = 1_000
THROUGHPUT_WINDOW_SECONDS = 15 * 60

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


class ORJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(status: int, code: str, message: str, field: str | None = None, headers=None) -> Response:
    return ORJSONResponse({"error": {"code": code, "field": field, "message": message}}, status_code=status, headers=headers)


def job_json(row, attempts=None) -> dict[str, Any]:
    body = {
        "id": str(row["id"]),
        "type": row["type"],
        "queue": row["queue"],
        "priority": row["priority"],
        "payload": row["payload"],
        "status": row["status"],
        "scheduleAt": iso(row["schedule_at"]),
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
        "startedAt": iso(row["started_at"]),
        "finishedAt": iso(row["finished_at"]),
        "attempt": row["attempt"],
        "maxAttempts": row["attempt_base"] + row["max_retries"] + 1,
        "retryMaxAttempts": row["max_retries"],
        "retryBackoffSeconds": row["backoff_seconds"],
        "timeoutSeconds": row["timeout_seconds"],
        "lastError": row["last_error"],
        "result": row["result"],
    }
    if attempts is not None:
        body["attempts"] = [attempt_json(attempt) for attempt in attempts]
    return body


def attempt_json(row) -> dict[str, Any]:
    finished = row["finished_at"]
    return {
        "attempt": row["attempt"],
        "node": row["node"],
        "startedAt": iso(row["started_at"]),
        "finishedAt": iso(finished),
        "durationMs": round((finished - row["started_at"]).total_seconds() * 1000) if finished else None,
        "outcome": row["outcome"],
        "error": row["error"],
        "traceback": row["traceback"],
    }


class Api:
    """Route handlers bound to one node's store, broker, registry and relay."""

    def __init__(self, node: Node):
        self.node = node

    async def _read_body(self, request: Request) -> bytes:
        # A payload sent as a JSON string grows up to six times through escapes (\u0000).
        # A larger body cannot pass the payload limit, so reading stops there.
        limit = self.node.settings.max_payload_bytes * 6 + 65_536
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise InvalidInput("payload", _too_large_message(limit), code="payload_too_large", status=413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise InvalidInput("payload", _too_large_message(limit), code="payload_too_large", status=413)
            chunks.append(chunk)
        return b"".join(chunks)

    async def submit(self, request: Request) -> Response:
        data = parse_body(await self._read_body(request))
        job = parse_job(data, self.node.registry, self.node.settings.max_payload_bytes)
        rows = await self.node.submit([job])
        return ORJSONResponse(job_json(rows[0]), status_code=201, headers={"Location": f"/jobs/{rows[0]['id']}"})

    async def submit_batch(self, request: Request) -> Response:
        data = parse_body(await self._read_body(request))
        if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
            raise InvalidInput("jobs", 'the body must be an object {"jobs": [job, ...]}')
        if not 1 <= len(data["jobs"]) <= BATCH_LIMIT:
            raise InvalidInput("jobs", f"jobs must hold from 1 to {BATCH_LIMIT} jobs; got {len(data['jobs'])}")
        settings, registry = self.node.settings, self.node.registry
        jobs = [parse_job(item, registry, settings.max_payload_bytes, f"jobs[{index}].") for index, item in enumerate(data["jobs"])]
        rows = await self.node.submit(jobs)
        return ORJSONResponse({"jobs": [job_json(row) for row in rows]}, status_code=201)

    async def list_jobs(self, request: Request) -> Response:
        query = request.query_params
        where = JobFilter(
            status=parse_status(query.get("status")),
            type=parse_text_filter(query.get("type"), "type"),
            queue=parse_text_filter(query.get("queue"), "queue"),
        )
        limit = parse_limit(query.get("limit"))
        rows = await self.node.store.list_jobs(where, parse_cursor(query.get("cursor")), limit + 1)
        next_cursor = str(rows[limit - 1]["id"]) if len(rows) > limit else None
        return ORJSONResponse({"jobs": [job_json(row) for row in rows[:limit]], "nextCursor": next_cursor})

    async def get_job(self, request: Request) -> Response:
        job_id = parse_job_id(request.path_params["job_id"])
        row = await self.node.store.get_job(job_id)
        if row is None:
            raise JobNotFound(job_id)
        return ORJSONResponse(job_json(row, await self.node.store.get_attempts(job_id)))

    async def job_events(self, request: Request) -> Response:
        job_id = parse_job_id(request.path_params["job_id"])
        rows = await self.node.store.get_job_events(job_id)
        if not rows and await self.node.store.get_job(job_id) is None:
            raise JobNotFound(job_id)
        return ORJSONResponse({"events": [event_json(row) for row in rows]})

    async def cancel(self, request: Request) -> Response:
        job_id = parse_job_id(request.path_params["job_id"])
        if not await self.node.store.cancel(job_id):
            return await self._conflict(job_id, "cancel", "only PENDING, QUEUED or RUNNING jobs can be cancelled")
        return ORJSONResponse(job_json(await self.node.store.get_job(job_id)))

    async def retry(self, request: Request) -> Response:
        job_id = parse_job_id(request.path_params["job_id"])
        row = await self.node.store.retry(job_id)
        if row is None:
            return await self._conflict(job_id, "retry", "only FAILED or CANCELLED jobs can be retried")
        await self.node.push_ready([row])
        return ORJSONResponse(job_json(await self.node.store.get_job(job_id)))

    async def delete(self, request: Request) -> Response:
        job_id = parse_job_id(request.path_params["job_id"])
        if not await self.node.store.delete(job_id):
            return await self._conflict(job_id, "delete", "only COMPLETED, FAILED or CANCELLED jobs can be deleted; cancel it first")
        return Response(status_code=204)

    async def _conflict(self, job_id, action: str, rule: str) -> Response:
        row = await self.node.store.get_job(job_id)
        if row is None:
            raise JobNotFound(job_id)
        return error_response(409, "conflict", f"cannot {action} job {job_id}: it is {row['status']}, and {rule}")

    async def types(self, request: Request) -> Response:
        return ORJSONResponse({"types": self.node.registry.types})

    async def health(self, request: Request) -> Response:
        report = await self.node.health()
        healthy = all(value == "ok" for key, value in report.items() if key in {"postgres", "redis"})
        return ORJSONResponse({"status": "ok" if healthy else "degraded", **report}, status_code=200 if healthy else 503)

    async def stats(self, request: Request) -> Response:
        store = self.node.store
        counts = {status.value: 0 for status in Status}
        queues: dict[str, dict[str, int]] = defaultdict(lambda: {status.value: 0 for status in Status})
        for row in await store.counts():
            counts[row["status"]] += row["count"]
            queues[row["queue"]][row["status"]] = row["count"]
        buckets = [
            {"at": iso(row["second"]), "completed": row["completed"], "failed": row["failed"]}
            for row in await store.finishes_since(THROUGHPUT_WINDOW_SECONDS)
        ]
        return ORJSONResponse(
            {"counts": counts, "queues": queues, "throughput": {"bucketSeconds": 1, "buckets": buckets}}
        )

    async def events(self, request: Request) -> Response:
        query = request.query_params
        status = parse_status(query.get("status"))
        job_id = query.get("jobId")
        where = EventFilter(
            job_id=parse_job_id(job_id) if job_id else None,
            type=parse_text_filter(query.get("type"), "type"),
            status=status.value if status else None,
            queue=parse_text_filter(query.get("queue"), "queue"),
        )
        resume_from = _parse_event_id(request.headers.get("last-event-id") or query.get("lastEventId"))
        relay = self.node.relay
        await relay.wait_started()
        subscriber = relay.subscribe(where)
        return EventSourceResponse(
            self._stream(subscriber, where, resume_from),
            ping=SSE_PING_SECONDS,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _stream(self, subscriber, where: EventFilter, resume_from: int | None):
        relay = self.node.relay
        try:
            if resume_from is not None:
                async for event in self._replay(resume_from, subscriber.start_after, where):
                    yield event
            while True:
                event = await subscriber.queue.get()
                if event is None:
                    if subscriber.overflowed:
                        yield ServerSentEvent(orjson.dumps({"reason": "the client fell behind; reload"}).decode(), event="resync")
                    return
                yield ServerSentEvent(orjson.dumps(event).decode(), event="job", id=str(event["id"]))
        finally:
            relay.unsubscribe(subscriber)

    async def _replay(self, after: int, until: int, where: EventFilter):
        """Yield stored events in (after, until]: what a reconnecting client missed before it subscribed."""
        while after < until:
            rows = await self.node.store.events_between(after, until, REPLAY_PAGE)
            if not rows:
                return
            for row in rows:
                event = event_json(row)
                if where.matches(event):
                    yield ServerSentEvent(orjson.dumps(event).decode(), event="job", id=str(event["id"]))
            after = rows[-1]["id"]


def _parse_event_id(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not text.isdigit():
        raise InvalidInput("Last-Event-ID", f"Last-Event-ID must be a non-negative event id; got {text[:40]!r}")
    return int(text)


def _too_large_message(limit: int) -> str:
    return f"the request body exceeds {limit} bytes; keep payload within JOBD_MAX_PAYLOAD_BYTES"


async def on_invalid_input(request: Request, error: InvalidInput) -> Response:
    return error_response(error.status, error.code, error.message, error.field)


async def on_not_found(request: Request, error: JobNotFound) -> Response:
    return error_response(404, "not_found", f"job {error.job_id} not found", "id")


async def on_database_error(request: Request, error: Exception) -> Response:
    logger.warning("request failed: PostgreSQL unavailable %s", fields(path=request.url.path, error=repr(error)))
    return error_response(503, "unavailable", "PostgreSQL is unavailable; retry shortly", headers={"Retry-After": "2"})


async def on_http_error(request: Request, error: HTTPException) -> Response:
    code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
    return error_response(error.status_code, code, f"{request.method} {request.url.path}: {error.detail}", headers=error.headers)


async def on_client_disconnect(request: Request, error: ClientDisconnect) -> Response:
    return Response(status_code=400)


async def on_unexpected(request: Request, error: Exception) -> Response:
    request_id = uuid.uuid4().hex[:12]
    logger.exception("unexpected error %s", fields(request_id=request_id, method=request.method, path=request.url.path))
    return error_response(500, "internal", f"internal error; the server log has details under request id {request_id}")


class SecurityHeaders:
    """Pure ASGI middleware, so streaming responses such as SSE pass through unbuffered."""

    HEADERS = [
        (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    ]

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + self.HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


def web_folder() -> Path:
    """Locate the dashboard files: inside the installed package, or at the top of a checkout."""
    packaged = Path(__file__).parent / "web"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "web"


def create_app(node: Node) -> Starlette:
    api = Api(node)
    routes = [
        Route("/jobs", api.submit, methods=["POST"]),
        Route("/jobs", api.list_jobs, methods=["GET"]),
        Route("/jobs/batch", api.submit_batch, methods=["POST"]),
        Route("/jobs/{job_id}", api.get_job, methods=["GET"]),
        Route("/jobs/{job_id}", api.delete, methods=["DELETE"]),
        Route("/jobs/{job_id}/events", api.job_events, methods=["GET"]),
        Route("/jobs/{job_id}/cancel", api.cancel, methods=["POST"]),
        Route("/jobs/{job_id}/retry", api.retry, methods=["POST"]),
        Route("/types", api.types, methods=["GET"]),
        Route("/stats", api.stats, methods=["GET"]),
        Route("/health", api.health, methods=["GET"]),
        Route("/events", api.events, methods=["GET"]),
    ]
    web = web_folder()
    if web.is_dir():
        routes.append(Mount("/", app=StaticFiles(directory=web, html=True), name="web"))
    handlers = {
        InvalidInput: on_invalid_input,
        JobNotFound: on_not_found,
        HTTPException: on_http_error,
        ClientDisconnect: on_client_disconnect,
        Exception: on_unexpected,
    }
    for error_type in UNAVAILABLE:
        handlers[error_type] = on_database_error
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.add_middleware(SecurityHeaders)
    return app

