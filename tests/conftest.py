"""Shared fixtures: real PostgreSQL and Redis, a clean slate per test, nodes and HTTP clients.

By default the suite starts embedded servers once per session. With JOBD_TEST_DATABASE_URL
and JOBD_TEST_REDIS_URL set, it uses those servers instead. It then owns the jobd tables in
that database and the keys under its own Redis prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as redis
import uvicorn

from jobd.api import create_app
from jobd.broker import Broker
from jobd.config import Settings
from jobd.embedded import free_port, temporary_servers
from jobd.node import Node, migrations_folder
from jobd.store import Store

sys.path.insert(0, str(Path(__file__).parent))

from apps import probe  # noqa: E402

TABLES = "jobs, job_attempts, job_events, job_counts, job_count_deltas, job_finishes, probe_runs"


async def wait_for(condition: Callable[[], Awaitable[object] | object], timeout: float = 10.0, message: str = "") -> object:
    """Poll `condition` every 20 ms until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {message or condition}")
        await asyncio.sleep(0.02)


@pytest.fixture(scope="session")
def server_urls(tmp_path_factory) -> tuple[str, str]:
    database_url = os.environ.get("JOBD_TEST_DATABASE_URL")
    redis_url = os.environ.get("JOBD_TEST_REDIS_URL")
    if database_url and redis_url:
        yield database_url, redis_url
        return
    # Not under pytest's private 0700 folder: as root, PostgreSQL runs as a service user that
    # must be able to reach its data folder.
    with temporary_servers(prefix="jobd-test-") as urls:
        yield urls


@pytest.fixture(scope="session")
async def migrated(server_urls) -> str:
    database_url, _ = server_urls
    connection = await asyncpg.connect(database_url)
    try:
        # A shared test database may hold tables from an earlier run: start from nothing.
        await connection.execute(
            "DROP TABLE IF EXISTS jobs, job_attempts, job_events, job_counts, job_count_deltas, "
            "job_finishes, jobd_migrations, probe_runs CASCADE; "
            "DROP FUNCTION IF EXISTS jobd_notify_events, jobd_count_inserts, jobd_count_deletes, jobd_count_updates, utc_iso CASCADE"
        )
    finally:
        await connection.close()
    store = await Store.connect(database_url)
    try:
        await store.migrate(migrations_folder())
        await store.pool.execute(probe.CREATE_TABLE)
    finally:
        await store.close()
    return database_url


@pytest.fixture
async def clean(migrated) -> None:
    connection = await asyncpg.connect(migrated)
    try:
        await connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY")
    finally:
        await connection.close()


@pytest.fixture
def redis_prefix() -> str:
    return f"jobdtest-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def settings(server_urls, clean, redis_prefix) -> AsyncIterator[Settings]:
    database_url, redis_url = server_urls
    yield Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        node_name=f"test-{uuid.uuid4().hex[:8]}",
        lease_seconds=5.0,
        heartbeat_seconds=0.5,
        rescue_interval_seconds=0.5,
        requeue_after_seconds=1.0,
        shutdown_grace_seconds=5.0,
        concurrency=20,
    )
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{{{redis_prefix}}}:*")]
        if keys:
            await client.delete(*keys)
    except redis.ConnectionError:
        pass  # a fault test stopped this Redis on purpose
    finally:
        await client.aclose()


@pytest.fixture
async def store(settings) -> AsyncIterator[Store]:
    store = await Store.connect(settings.database_url)
    yield store
    await store.close()


@pytest.fixture
async def broker(settings) -> AsyncIterator[Broker]:
    broker = Broker.connect(settings.redis_url, settings.redis_prefix)
    yield broker
    await broker.close()


@pytest.fixture
def registry():
    probe.reset()
    return probe.registry


@pytest.fixture
async def make_node(settings, registry) -> AsyncIterator[Callable[..., Awaitable[Node]]]:
    """Start nodes with the probe registry; every node still running is stopped at teardown."""
    nodes: list[Node] = []

    async def start(*, start_loops: bool = True, run_worker: bool = True, **overrides) -> Node:
        node_settings = settings.replace(node_name=f"test-{uuid.uuid4().hex[:8]}", **overrides)
        node = await Node.open(node_settings, registry, run_worker=run_worker, migrate=False)
        if start_loops:
            await node.start()
            await node.relay.wait_started()
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        with contextlib.suppress(Exception):
            if node.store.pool.is_closing():
                continue
            await node.stop(grace_seconds=0)


@pytest.fixture
async def node(make_node) -> Node:
    return await make_node()


@pytest.fixture
async def client(node) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(node))
    async with httpx.AsyncClient(transport=transport, base_url="http://jobd.test") as client:
        yield client


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        yield


@pytest.fixture
async def live_server(node) -> AsyncIterator[str]:
    """Serve the node's API on a real socket, for streaming (SSE) and browser tests."""
    port = free_port()
    config = uvicorn.Config(create_app(node), host="127.0.0.1", port=port, log_config=None, lifespan="off", timeout_graceful_shutdown=1)
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(), name="test-uvicorn")
    await wait_for(lambda: server.started, message="uvicorn to start")
    yield f"http://127.0.0.1:{port}"
    node.relay.stop()
    server.should_exit = True
    await task


def job_body(job_type: str = "NOOP", **fields) -> dict:
    return {"type": job_type, "payload": fields.pop("payload", {}), **fields}
