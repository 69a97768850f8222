"""Fault injection against real servers: killed and stopped workers, Redis losing its data or
going away, PostgreSQL restarting or cut off from one node, and racing claimers.

Each test checks that no job is lost and that no job runs twice at once. TRACE jobs record
every run in `probe_runs`, so runs in killed processes can be checked from outside. A test
that stops, restarts or flushes a server starts its own embedded one, so the servers the
suite shares (possibly the machine's own) are never disturbed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import asyncpg
import httpx
import pytest
import redis.asyncio as redis

from apps import faultapp, probe
from conftest import job_body, wait_for
from jobd.api import create_app
from jobd.config import Settings
from jobd.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from jobd.handlers import Registry
from jobd.models import NewJob, redis_score
from jobd.node import migrations_folder
from jobd.store import Store
from jobd.validation import parse_job

TESTS_FOLDER = Path(__file__).resolve().parent
REPOSITORY = TESTS_FOLDER.parent
QUEUE = "default"
# A rescued or failed attempt is retried at once, so tests need not wait for the default backoff.
RETRY_AT_ONCE = {"maxRetries": 3, "backoffSeconds": 0}


# -- helpers -----------------------------------------------------------------------------------


def new_jobs(settings: Settings, registry: Registry, count: int, job_type: str = "NOOP", **fields) -> list[NewJob]:
    return [parse_job(job_body(job_type, **fields), registry, settings.max_payload_bytes) for _ in range(count)]


async def count_statuses(pool: asyncpg.Pool, job_ids: Sequence[UUID]) -> Counter:
    rows = await pool.fetch(
        "SELECT status, count(*) AS count FROM jobs WHERE id = ANY($1::uuid[]) GROUP BY status", list(job_ids)
    )
    return Counter({row["status"]: row["count"] for row in rows})


def all_completed(pool: asyncpg.Pool, job_ids: Sequence[UUID]) -> Callable[[], object]:
    async def check() -> bool:
        return (await count_statuses(pool, job_ids))["COMPLETED"] == len(job_ids)

    return check


async def database_now(pool: asyncpg.Pool) -> datetime:
    """Return the database clock, which also stamps `probe_runs`."""
    return await pool.fetchval("SELECT clock_timestamp()")


async def trace_runs(pool: asyncpg.Pool, job_ids: Sequence[UUID]) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT job_id, attempt, pid, started_at, finished_at FROM probe_runs "
        "WHERE job_id = ANY($1::uuid[]) ORDER BY job_id, started_at",
        list(job_ids),
    )


async def queue_is_empty(broker) -> bool:
    return await broker.size(QUEUE) == 0


def stopped_loops(node) -> list[str]:
    """Return the names of the node's loop tasks that have ended. Each should run until the node stops."""
    loops = [*node._tasks, node.worker._heartbeat, node.worker._lease_guard, node.worker._flusher, *node.worker._fetchers]
    return [task.get_name() for task in loops if task.done()]


def runs_started_in(pool: asyncpg.Pool, job_ids: Sequence[UUID], pid: int) -> Callable[[], object]:
    async def check() -> bool:
        started = await pool.fetchval(
            "SELECT count(DISTINCT job_id) FROM probe_runs WHERE job_id = ANY($1::uuid[]) AND pid = $2", list(job_ids), pid
        )
        return started == len(job_ids)

    return check


def assert_runs_do_not_overlap(runs: Sequence[asyncpg.Record], stopped_at: dict[int, datetime]) -> None:
    """Check that each job's runs follow one another and that its last run finished.

    A run without `finished_at` was interrupted: it counts as ended when its process was
    stopped, as `stopped_at` gives by pid. An unfinished run in a live process fails the check.
    """
    by_job: dict[UUID, list[asyncpg.Record]] = defaultdict(list)
    for run in runs:
        by_job[run["job_id"]].append(run)
    for job_id, job_runs in by_job.items():
        for earlier, later in zip(job_runs, job_runs[1:]):
            ended_at = earlier["finished_at"] or stopped_at.get(earlier["pid"])
            assert ended_at is not None, (
                f"job {job_id}: the run of attempt {earlier['attempt']} in pid {earlier['pid']} never finished, "
                "and that process was not stopped"
            )
            assert later["started_at"] >= ended_at, (
                f"job {job_id}: attempt {later['attempt']} started in pid {later['pid']} at {later['started_at']}, "
                f"before attempt {earlier['attempt']} in pid {earlier['pid']} ended at {ended_at}"
            )
        assert job_runs[-1]["finished_at"] is not None, f"job {job_id}: its last run never finished"


def private_folder(prefix: str) -> Path:
    """Create a folder that the PostgreSQL service user can enter when the tests run as root."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


def postgres_fatal_error(code: str = "57P01", message: str = "terminating connection due to administrator command") -> bytes:
    """Encode the ErrorResponse that a PostgreSQL backend sends before it closes a session."""
    body = b"".join(tag + text.encode() + b"\0" for tag, text in ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", code), (b"M", message)))
    body += b"\0"
    return b"E" + struct.pack("!I", len(body) + 4) + body


class TcpProxy:
    """A TCP proxy on 127.0.0.1 in front of one server, which can partition its clients from it.

    `cut` resets every connection and rejects new ones, as a crashed router does. `blackhole`
    keeps connections open but drops every byte, as a silent network partition does: the
    client sees no error, only missing replies. `terminate_sessions` sends each PostgreSQL
    client a FATAL error but keeps its socket open, as a backend that is shutting down does
    until it closes the socket. `reset` ends any fault: it resets the connections again, so
    that requests stuck in them fail, and forwards new ones.
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = 0
        self.rejecting = False
        self.dropping = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._clients: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def proxied_url(self, url: str) -> str:
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def cut(self) -> None:
        self.rejecting = True
        self._reset_connections()

    def blackhole(self) -> None:
        self.dropping = True

    def terminate_sessions(self) -> None:
        self.rejecting = True
        self.dropping = True
        for client in list(self._clients):
            client.write(postgres_fatal_error())

    def reset(self) -> None:
        self.rejecting = False
        self.dropping = False
        self._reset_connections()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._reset_connections()
            await self._server.wait_closed()

    def _reset_connections(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        self._clients.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.rejecting:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        self._clients.add(writer)
        await asyncio.gather(self._pump(reader, upstream_writer), self._pump(upstream_reader, writer), return_exceptions=True)
        self._clients.discard(writer)
        for end in (writer, upstream_writer):
            self._writers.discard(end)
            end.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65_536):
            if not self.dropping:
                writer.write(data)
                await writer.drain()
        writer.transport.abort()


class WorkerProcess:
    """A `jobd worker` subprocess that runs the probe handlers and logs to a file."""

    def __init__(self, settings: Settings, log_path: Path, environment: dict[str, str]):
        self.log_path = log_path
        self.node_name = f"{settings.node_name}-subprocess"
        env = {key: value for key, value in os.environ.items() if not key.startswith("JOBD_")}
        env.update(
            {
                "PYTHONPATH": os.pathsep.join([str(TESTS_FOLDER), str(REPOSITORY)]),
                "JOBD_DATABASE_URL": settings.database_url,
                "JOBD_REDIS_URL": settings.redis_url,
                "JOBD_REDIS_PREFIX": settings.redis_prefix,
                "JOBD_NODE_NAME": self.node_name,
                "JOBD_LEASE_SECONDS": "2",
                "JOBD_HEARTBEAT_SECONDS": "0.5",
                "JOBD_RESCUE_INTERVAL_SECONDS": "0.5",
                "JOBD_REQUEUE_AFTER_SECONDS": "1",
                "JOBD_SHUTDOWN_GRACE_SECONDS": "5",
                **environment,
            }
        )
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jobd", "worker", "--app", "apps.probe"],
                cwd=TESTS_FOLDER,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_contains(self, text: str) -> bool:
        return text in self.log_path.read_text(errors="replace")

    async def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit and return its exit code. Fail with its log after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail(f"jobd worker pid {self.pid} still runs after {timeout:g} s. Its log ends:\n{self.log_tail()}")
            await asyncio.sleep(0.02)
        return self.process.returncode

    async def wait_started(self, pool: asyncpg.Pool, job_ids: Sequence[UUID], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        check = runs_started_in(pool, job_ids, self.pid)
        while not await check():
            if self.process.poll() is not None:
                pytest.fail(f"jobd worker pid {self.pid} exited with code {self.process.returncode}. Its log ends:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"jobd worker pid {self.pid} did not start {len(job_ids)} jobs in {timeout:g} s. Its log ends:\n{self.log_tail()}")
            await asyncio.sleep(0.02)


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def start_worker_process(settings, tmp_path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `jobd worker` subprocesses. Any still running at teardown is killed by its pid."""
    workers: list[WorkerProcess] = []

    def start(**environment: str) -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(workers)}.log", environment)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait(timeout=10)


@pytest.fixture
def registry() -> Registry:
    """The probe handlers plus TRACE_ENDS, for the nodes that `make_node` starts in this module."""
    probe.reset()
    return faultapp.registry


@pytest.fixture
async def use_trace_database(monkeypatch) -> AsyncIterator[Callable]:
    """Point this process's TRACE and TRACE_ENDS handlers at a database through a pool closed after the test.

    The pool is created here rather than lazily by the handler, because concurrent first runs
    of TRACE would each create a pool and leak all but one.
    """
    pools: list[asyncpg.Pool] = []

    async def use(database_url: str) -> None:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
        pools.append(pool)
        monkeypatch.setenv("JOBD_DATABASE_URL", database_url)
        monkeypatch.setattr(probe, "_pool", pool)
        monkeypatch.setattr(faultapp, "pool", pool)

    yield use
    for pool in pools:
        try:
            await asyncio.wait_for(pool.close(), timeout=10)
        except TimeoutError:
            pool.terminate()


@pytest.fixture
def dedicated_redis(tmp_path) -> Iterator[EmbeddedRedis]:
    """A Redis server of this test alone, on a fixed port, which the test may stop, restart or flush."""
    server = EmbeddedRedis(tmp_path / "redis", port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def dedicated_postgres() -> AsyncIterator[EmbeddedPostgres]:
    """A migrated PostgreSQL server of this test alone, on a fixed port, which the test may restart."""
    folder = private_folder("jobd-fault-postgres-")
    server = EmbeddedPostgres(folder, port=free_port())
    try:
        await asyncio.to_thread(server.start)
        store = await Store.connect(server.url)
        try:
            await store.migrate(migrations_folder())
            await store.pool.execute(probe.CREATE_TABLE)
        finally:
            await store.close()
        yield server
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(folder, ignore_errors=True)


# -- a worker process dies or stops ---------------------------------------------------------


async def test_killed_worker_job_is_rescued(settings, store, make_node, registry, start_worker_process, use_trace_database):
    await use_trace_database(settings.database_url)
    submitter = await make_node(run_worker=False, start_loops=False)
    jobs = new_jobs(settings, registry, 3, "TRACE", payload={"seconds": 3}, retryPolicy=RETRY_AT_ONCE)
    job_ids = [job.id for job in jobs]
    worker = start_worker_process(JOBD_LEASE_SECONDS="2", JOBD_HEARTBEAT_SECONDS="0.5")

    await submitter.submit(jobs)
    await worker.wait_started(store.pool, job_ids)
    os.kill(worker.pid, signal.SIGKILL)
    assert await worker.wait_exit(timeout=10) == -signal.SIGKILL
    killed_at = await database_now(store.pool)

    assert await count_statuses(store.pool, job_ids) == {"RUNNING": len(job_ids)}

    rescuer = await make_node()
    await wait_for(all_completed(store.pool, job_ids), timeout=30, message="the killed worker's jobs to complete elsewhere")

    for job_id in job_ids:
        job = await store.get_job(job_id)
        assert job["attempt"] == 2
        attempts = await store.get_attempts(job_id)
        assert [attempt["outcome"] for attempt in attempts] == ["RESCUED", "COMPLETED"]
        assert [attempt["node"] for attempt in attempts] == [worker.node_name, rescuer.settings.node_name]
        assert "lease expired" in attempts[0]["error"]

    runs = await trace_runs(store.pool, job_ids)
    assert sorted((run["attempt"], run["pid"]) for run in runs) == sorted(
        [(1, worker.pid)] * len(job_ids) + [(2, os.getpid())] * len(job_ids)
    )
    assert all(run["finished_at"] is None for run in runs if run["pid"] == worker.pid)
    assert_runs_do_not_overlap(runs, {worker.pid: killed_at})


async def test_sigterm_hands_back_jobs_past_grace(settings, store, make_node, registry, start_worker_process, use_trace_database):
    await use_trace_database(settings.database_url)
    submitter = await make_node(run_worker=False, start_loops=False)
    short_jobs = new_jobs(settings, registry, 3, "TRACE", payload={"seconds": 1})
    long_jobs = new_jobs(settings, registry, 3, "TRACE", payload={"seconds": 10})
    short_ids = [job.id for job in short_jobs]
    long_ids = [job.id for job in long_jobs]
    worker = start_worker_process(JOBD_SHUTDOWN_GRACE_SECONDS="3")

    await submitter.submit(short_jobs + long_jobs)
    await worker.wait_started(store.pool, short_ids + long_ids)
    worker.process.send_signal(signal.SIGTERM)
    signalled_at = await database_now(store.pool)
    assert await worker.wait_exit(timeout=15) == 0
    exited_at = await database_now(store.pool)

    # The short jobs were still running at SIGTERM and finished within the grace period.
    assert await count_statuses(store.pool, short_ids) == {"COMPLETED": len(short_ids)}
    for run in await trace_runs(store.pool, short_ids):
        assert run["finished_at"] > signalled_at

    # The long jobs were handed back as if never claimed: no attempt spent, no attempt record.
    assert await count_statuses(store.pool, long_ids) == {"QUEUED": len(long_ids)}
    for job_id in long_ids:
        job = await store.get_job(job_id)
        assert job["attempt"] == 0
        assert job["node"] is None
        assert await store.get_attempts(job_id) == []
        events = await store.get_job_events(job_id)
        assert events[-1]["kind"] == "queued"
        assert events[-1]["data"] == {"reason": "handed back at shutdown"}

    finisher = await make_node()
    await wait_for(all_completed(store.pool, long_ids), timeout=30, message="the handed-back jobs to complete")

    for job_id in long_ids:
        job = await store.get_job(job_id)
        assert job["attempt"] == 1
        attempts = await store.get_attempts(job_id)
        assert [(attempt["attempt"], attempt["outcome"], attempt["node"]) for attempt in attempts] == [
            (1, "COMPLETED", finisher.settings.node_name)
        ]
    runs = await trace_runs(store.pool, short_ids + long_ids)
    assert Counter(run["pid"] for run in runs) == {worker.pid: len(short_ids) + len(long_ids), os.getpid(): len(long_ids)}
    assert_runs_do_not_overlap(runs, {worker.pid: exited_at})


async def test_sigterm_with_all_slots_busy_exits(settings, store, make_node, registry, start_worker_process):
    submitter = await make_node(run_worker=False, start_loops=False)
    jobs = new_jobs(settings, registry, 2, "TRACE", payload={"seconds": 15})
    job_ids = [job.id for job in jobs]
    worker = start_worker_process(JOBD_CONCURRENCY="2", JOBD_SHUTDOWN_GRACE_SECONDS="1")

    await submitter.submit(jobs)
    await worker.wait_started(store.pool, job_ids)
    worker.process.send_signal(signal.SIGTERM)

    # One second of grace, then the hand-back: well within six seconds, far before the jobs end.
    assert await worker.wait_exit(timeout=6) == 0
    assert await count_statuses(store.pool, job_ids) == {"QUEUED": len(job_ids)}


async def test_second_sigterm_stops_at_once(settings, store, make_node, registry, start_worker_process):
    submitter = await make_node(run_worker=False, start_loops=False)
    jobs = new_jobs(settings, registry, 1, "TRACE", payload={"seconds": 40})
    job_ids = [job.id for job in jobs]
    worker = start_worker_process(JOBD_SHUTDOWN_GRACE_SECONDS="30")

    await submitter.submit(jobs)
    await worker.wait_started(store.pool, job_ids)
    worker.process.send_signal(signal.SIGTERM)
    await wait_for(lambda: worker.log_contains("waiting up to 30s"), timeout=10, message="the worker to start its grace period")
    worker.process.send_signal(signal.SIGTERM)

    assert await worker.wait_exit(timeout=5) == 0
    assert await count_statuses(store.pool, job_ids) == {"QUEUED": 1}


# -- Redis loses ids, goes away or delivers an id twice ----------------------------------------


async def test_redis_flushall_loses_no_queued_job(settings, store, dedicated_redis, make_node, registry):
    submitter = await make_node(redis_url=dedicated_redis.url, run_worker=False, start_loops=False)
    jobs = new_jobs(settings, registry, 1_000)
    job_ids = [job.id for job in jobs]
    await submitter.submit(jobs)
    assert await submitter.broker.size(QUEUE) == len(jobs)

    client = redis.Redis.from_url(dedicated_redis.url)
    try:
        await client.flushall()
    finally:
        await client.aclose()
    assert await submitter.broker.size(QUEUE) == 0
    assert await count_statuses(store.pool, job_ids) == {"QUEUED": len(jobs)}

    await make_node(redis_url=dedicated_redis.url)
    await wait_for(all_completed(store.pool, job_ids), timeout=40, message="1,000 flushed jobs to complete")

    assert set(probe.runs) == set(job_ids)
    assert Counter(probe.runs.values()) == {1: len(jobs)}
    attempts = await store.pool.fetchval(
        "SELECT count(*) FROM job_attempts WHERE job_id = ANY($1::uuid[]) AND attempt = 1 AND outcome = 'COMPLETED'", job_ids
    )
    assert attempts == len(jobs)


async def test_job_submitted_during_redis_outage_runs(settings, store, dedicated_redis, make_node, registry):
    node = await make_node(redis_url=dedicated_redis.url)
    transport = httpx.ASGITransport(app=create_app(node))
    async with httpx.AsyncClient(transport=transport, base_url="http://jobd.test") as client:
        port = dedicated_redis.port
        await asyncio.to_thread(dedicated_redis.stop)

        response = await client.post("/jobs", json=job_body("NOOP"))
        assert response.status_code == 201, response.text
        job_id = UUID(response.json()["id"])
        assert response.json()["status"] == "QUEUED"
        assert (await store.get_job(job_id))["status"] == "QUEUED"

        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["redis"].startswith("unavailable")

        await asyncio.to_thread(dedicated_redis.start)
        assert dedicated_redis.port == port
        await wait_for(all_completed(store.pool, [job_id]), timeout=20, message="the job to complete after Redis restarted")

        assert probe.runs[job_id] == 1
        health = await client.get("/health")
        assert health.status_code == 200, health.text


async def test_job_pushed_twice_runs_once(settings, store, broker, make_node, registry):
    first = await make_node()
    await make_node()
    jobs = new_jobs(settings, registry, 200)
    job_ids = [job.id for job in jobs]

    # Push every id a second time while two nodes pop: an id that a node already took is
    # delivered again.
    rows = await first.submit(jobs)
    entries = [(row["queue"], row["id"], redis_score(row["priority"], row["schedule_at"])) for row in rows]
    await broker.push(entries)
    await wait_for(all_completed(store.pool, job_ids), timeout=20, message="200 jobs to complete")

    # Deliver every id once more after it completed. The nodes must pop and drop them all.
    assert await broker.push(entries) == len(entries)
    await wait_for(lambda: queue_is_empty(broker), timeout=10, message="the duplicate ids to be popped")

    assert Counter(probe.runs[job_id] for job_id in job_ids) == {1: len(job_ids)}
    attempts = await store.pool.fetch(
        "SELECT attempt, outcome, count(*) AS count FROM job_attempts WHERE job_id = ANY($1::uuid[]) GROUP BY attempt, outcome",
        job_ids,
    )
    assert [(row["attempt"], row["outcome"], row["count"]) for row in attempts] == [(1, "COMPLETED", len(job_ids))]


# -- a live worker loses PostgreSQL -------------------------------------------------------------


PARTITIONS = [
    pytest.param("cut", 2.0, 0.5, id="connections reset"),
    pytest.param("blackhole", 2.0, 0.7, id="traffic dropped, heartbeat 0.7 s"),
    pytest.param(
        "blackhole",
        4.0,
        1.2,
        id="traffic dropped, heartbeat 1.2 s",
    ),
]


def lease_expired(pool: asyncpg.Pool, job_id: UUID) -> Callable[[], object]:
    async def check() -> bool:
        return await pool.fetchval("SELECT lease_expires_at < clock_timestamp() FROM jobs WHERE id = $1", job_id)

    return check


@pytest.mark.parametrize(("partition", "lease_seconds", "heartbeat_seconds"), PARTITIONS)
async def test_partitioned_worker_stops_job_in_lease(
    settings, store, make_node, registry, use_trace_database, partition, lease_seconds, heartbeat_seconds
):
    await use_trace_database(settings.database_url)
    proxy = TcpProxy(urlsplit(settings.database_url).port or 5432)
    await proxy.start()
    partitioned = await make_node(
        database_url=proxy.proxied_url(settings.database_url), lease_seconds=lease_seconds, heartbeat_seconds=heartbeat_seconds
    )
    try:
        jobs = new_jobs(settings, registry, 1, "TRACE_ENDS", payload={"seconds": 6}, retryPolicy=RETRY_AT_ONCE)
        job_id = jobs[0].id
        await partitioned.submit(jobs)
        await wait_for(runs_started_in(store.pool, [job_id], os.getpid()), timeout=10, message="the job to start")

        # Once the lease has expired, no renewal from the partitioned node can move it any more.
        getattr(proxy, partition)()
        await wait_for(lease_expired(store.pool, job_id), timeout=lease_seconds + 5, message="the lease to expire")
        lease_expired_at = await store.pool.fetchval("SELECT lease_expires_at FROM jobs WHERE id = $1", job_id)
        rescuer = await make_node()
        await wait_for(all_completed(store.pool, [job_id]), timeout=30, message="the job to complete on the rescuing node")

        attempts = await store.get_attempts(job_id)
        assert [(attempt["attempt"], attempt["outcome"], attempt["node"]) for attempt in attempts] == [
            (1, "RESCUED", partitioned.settings.node_name),
            (2, "COMPLETED", rescuer.settings.node_name),
        ]
        runs = await trace_runs(store.pool, [job_id])
        assert [run["attempt"] for run in runs] == [1, 2]
        # TRACE_ENDS stamps finished_at when cancelled, so the partitioned run has an end.
        stopped_at = runs[0]["finished_at"]
        assert stopped_at < lease_expired_at, (
            f"the partitioned node stopped the job {(stopped_at - lease_expired_at).total_seconds():.3f} s after its lease expired"
        )
        assert_runs_do_not_overlap(runs, {})
    finally:
        proxy.reset()
        await partitioned.stop(grace_seconds=0)
        await proxy.close()


async def test_terminated_sessions_keep_every_loop_running(settings, store, make_node, registry, use_trace_database):
    await use_trace_database(settings.database_url)
    proxy = TcpProxy(urlsplit(settings.database_url).port or 5432)
    await proxy.start()
    node = await make_node(database_url=proxy.proxied_url(settings.database_url))
    try:
        jobs = new_jobs(settings, registry, 1, "TRACE_ENDS", payload={"seconds": 8}, retryPolicy=RETRY_AT_ONCE)
        job_id = jobs[0].id
        await node.submit(jobs)
        await wait_for(runs_started_in(store.pool, [job_id], os.getpid()), timeout=10, message="the job to start")

        # Every session gets PostgreSQL's FATAL shutdown error with its socket left open, until
        # the relay's health check (every 2 s) has run into it too.
        proxy.terminate_sessions()
        await make_node()  # rescues the job if the first node stops renewing its lease
        transport = httpx.ASGITransport(app=create_app(node), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://jobd.test") as client:
            health = await client.get("/health")
        assert health.status_code == 503, health.text
        await wait_for(lambda: not node.relay.connected.is_set(), timeout=10, message="the event relay to notice the error")
        proxy.reset()

        await wait_for(all_completed(store.pool, [job_id]), timeout=30, message="the job to complete")

        # The fault lasts about 2 s, far less than the 5 s lease, so the node keeps its job.
        attempts = await store.get_attempts(job_id)
        assert [(attempt["attempt"], attempt["outcome"], attempt["node"]) for attempt in attempts] == [
            (1, "COMPLETED", node.settings.node_name)
        ]
        assert_runs_do_not_overlap(await trace_runs(store.pool, [job_id]), {})
        await wait_for(node.relay.connected.is_set, timeout=15, message="the event relay to listen again")
        assert stopped_loops(node) == []
    finally:
        proxy.reset()
        await node.stop(grace_seconds=0)
        await proxy.close()


# -- PostgreSQL restarts ------------------------------------------------------------------------


@pytest.mark.parametrize("outage", [pytest.param("stop", id="fast shutdown"), pytest.param("kill", id="crash")])
async def test_postgres_restart_loses_no_job(settings, dedicated_postgres, make_node, registry, use_trace_database, outage):
    database_url = dedicated_postgres.url
    await use_trace_database(database_url)
    node = await make_node(database_url=database_url, lease_seconds=10.0)
    store = await Store.connect(database_url)
    transport = httpx.ASGITransport(app=create_app(node))
    async with httpx.AsyncClient(transport=transport, base_url="http://jobd.test") as client:
        try:
            across = new_jobs(settings, registry, 5, "TRACE_ENDS", payload={"seconds": 4}, retryPolicy=RETRY_AT_ONCE)
            across_ids = [job.id for job in across]
            await node.submit(across)
            await wait_for(runs_started_in(store.pool, across_ids, os.getpid()), timeout=10, message="the first jobs to start")

            outage_began_at = await database_now(store.pool)
            await asyncio.to_thread(getattr(dedicated_postgres, outage))
            health = await client.get("/health")
            assert health.status_code == 503
            assert health.json()["postgres"].startswith("unavailable")
            await wait_for(lambda: not node.relay.connected.is_set(), timeout=10, message="the event relay to notice the outage")
            await asyncio.to_thread(dedicated_postgres.start)
            assert dedicated_postgres.url == database_url
            restarted_at = await database_now(store.pool)

            # After the restart: one job through the API (worker), one due a second later
            # (scheduler), one inserted without its Redis push (recovery must push it).
            response = await client.post("/jobs", json=job_body("NOOP"))
            assert response.status_code == 201, response.text
            submitted_id = UUID(response.json()["id"])
            due_at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
            response = await client.post("/jobs", json=job_body("NOOP", scheduleAt=due_at))
            assert response.status_code == 201, response.text
            scheduled_id = UUID(response.json()["id"])
            assert response.json()["status"] == "PENDING"
            unpushed = new_jobs(settings, registry, 1)
            await store.insert_jobs(unpushed)
            after_ids = [submitted_id, scheduled_id, unpushed[0].id]

            await wait_for(all_completed(store.pool, after_ids), timeout=30, message="jobs submitted after the restart to complete")
            await wait_for(all_completed(store.pool, across_ids), timeout=30, message="jobs running across the restart to complete")
            await wait_for(node.relay.connected.is_set, timeout=15, message="the event relay to listen again")
            last_event_id = await store.last_event_id()
            await wait_for(lambda: node.relay.last_id >= last_event_id, timeout=10, message="the event relay to catch up")
            health = await client.get("/health")
            assert health.status_code == 200, health.text
            assert health.json()["listening"] is True
            assert stopped_loops(node) == []

            runs = await trace_runs(store.pool, across_ids)
            assert {run["job_id"] for run in runs} == set(across_ids)
            assert_runs_do_not_overlap(runs, {})
            first_runs = {run["job_id"]: run for run in reversed(runs)}
            last_runs = {run["job_id"]: run for run in runs}
            for job_id in across_ids:
                assert first_runs[job_id]["started_at"] < outage_began_at, "the outage did not begin while the job ran"
                # The outage is far shorter than the 10 s lease, so the node keeps its jobs.
                attempts = await store.get_attempts(job_id)
                assert [(attempt["attempt"], attempt["outcome"]) for attempt in attempts] == [(1, "COMPLETED")]
                assert last_runs[job_id]["finished_at"] > restarted_at, "the job did not run until after the restart"
            for job_id in after_ids:
                assert probe.runs[job_id] == 1
        finally:
            await store.close()


# -- concurrent claims ---------------------------------------------------------------------------


async def test_concurrent_claims_take_each_job_once(settings, store, registry):
    jobs = new_jobs(settings, registry, 50)
    job_ids = [job.id for job in jobs]
    await store.insert_jobs(jobs)

    claims = await asyncio.gather(*(store.claim(job_ids, f"claimer-{index}", 30) for index in range(20)))

    claimed_by = {}
    for index, rows in enumerate(claims):
        for row in rows:
            assert row["id"] not in claimed_by, f"job {row['id']} claimed by claimer-{claimed_by.get(row['id'])} and claimer-{index}"
            claimed_by[row["id"]] = index
    assert set(claimed_by) == set(job_ids)
    for job_id, index in claimed_by.items():
        job = await store.get_job(job_id)
        assert job["status"] == "RUNNING"
        assert job["attempt"] == 1
        assert job["node"] == f"claimer-{index}"
        attempts = await store.get_attempts(job_id)
        assert [(attempt["attempt"], attempt["node"]) for attempt in attempts] == [(1, f"claimer-{index}")]
