"""One jobd process: which loops run, how they start, and how they stop.

A node runs, in one event loop, any of: the HTTP API, the worker pool, the scheduler, the
recovery loop and the event relay. Every loop is safe on every node at once, so any number
of nodes may share one PostgreSQL and one Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from jobd import broker as broker_module
from jobd.broker import Broker
from jobd.config import Settings
from jobd.errors import ConfigError
from jobd.events import Relay
from jobd.handlers import Registry
from jobd.log import fields
from jobd.models import NewJob, Status
from jobd.recovery import Recovery
from jobd.scheduler import Scheduler
from jobd.store import Store
from jobd.worker import DATABASE_ERRORS, Worker

logger = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 2.0


def migrations_folder() -> Path:
    """Locate the migrations: inside the installed package, or at the top of a checkout."""
    packaged = Path(__file__).parent / "migrations"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "migrations"


class Node:
    def __init__(self, settings: Settings, registry: Registry, store: Store, broker: Broker, *, run_worker: bool = True):
        self.settings = settings
        self.registry = registry
        self.store = store
        self.broker = broker
        self.scheduler = Scheduler(store, broker, settings)
        self.worker = (
            Worker(store, broker, registry, settings, on_retry_scheduled=lambda due_at: self.scheduler.nudge())
            if run_worker
            else None
        )
        self.recovery = Recovery(store, broker, settings, on_retry_scheduled=self.scheduler.nudge)
        self.relay = Relay(store, on_event=self._on_event)
        self._tasks: list[asyncio.Task] = []

    @classmethod
    async def open(cls, settings: Settings, registry: Registry, *, run_worker: bool = True, migrate: bool = True) -> Node:
        """Connect to PostgreSQL and Redis (URLs must be set) and apply pending migrations."""
        if not (settings.database_url and settings.redis_url):
            raise ConfigError("JOBD_DATABASE_URL and JOBD_REDIS_URL must both be set, or both left empty for embedded servers")
        store = await Store.connect(settings.database_url, max_size=max(10, min(50, settings.concurrency // 4 + 5)))
        try:
            if migrate:
                await store.migrate(migrations_folder())
        except BaseException:
            await store.close()
            raise
        broker = Broker.connect(settings.redis_url, settings.redis_prefix)
        return cls(settings, registry, store, broker, run_worker=run_worker)

    def _on_event(self, event: dict) -> None:
        # Another node may have scheduled something due before this scheduler's next wake-up.
        if event["status"] == Status.PENDING:
            self.scheduler.nudge()

    async def start(self) -> None:
        self._spawn(self.relay.run(), "jobd-relay")
        self._spawn(self.scheduler.run(), "jobd-scheduler")
        self._spawn(self.recovery.run(), "jobd-recovery")
        if self.worker is not None:
            self.worker.start()
        logger.info("node started %s", fields(node=self.settings.node_name, types=",".join(self.registry.types)))

    def _spawn(self, coroutine, name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        task.add_done_callback(self._report_crash)
        self._tasks.append(task)

    @staticmethod
    def _report_crash(task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("loop %s crashed", task.get_name(), exc_info=task.exception())

    async def stop(self, grace_seconds: float | None = None) -> None:
        """Stop claiming, let running jobs finish within the grace period, then stop every loop."""
        self.relay.stop()
        if self.worker is not None:
            await self.worker.stop(grace_seconds)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.broker.close()
        await self.store.close()
        logger.info("node stopped %s", fields(node=self.settings.node_name))

    async def submit(self, jobs: Sequence[NewJob]) -> list[asyncpg.Record]:
        """Insert jobs durably, then push the ones already due to Redis.

        The insert is the commit point: if Redis is down the jobs still exist, and
        recovery pushes them once Redis is back.
        """
        rows = await self.store.insert_jobs(jobs)
        await self.push_ready([row for row in rows if row["status"] == Status.QUEUED])
        if any(row["status"] == Status.PENDING for row in rows):
            self.scheduler.nudge()
        return rows

    async def push_ready(self, rows) -> None:
        if not rows:
            return
        try:
            await self.broker.push_jobs(rows)
        except broker_module.UNAVAILABLE as error:
            logger.warning(
                "Redis unavailable: %d jobs stay QUEUED until recovery pushes them %s",
                len(rows),
                fields(job_id=rows[0]["id"], error=repr(error)),
            )

    async def health(self) -> dict[str, object]:
        report: dict[str, object] = {"node": self.settings.node_name}
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
                await self.store.ping()
            report["postgres"] = "ok"
        except (*DATABASE_ERRORS, asyncio.TimeoutError) as error:
            report["postgres"] = f"unavailable: {error!r}"
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
                await self.broker.ping()
            report["redis"] = "ok"
        except (*broker_module.UNAVAILABLE, broker_module.BrokerError, asyncio.TimeoutError) as error:
            report["redis"] = f"unavailable: {error!r}"
        report["listening"] = self.relay.connected.is_set()
        if self.worker is not None:
            report["running"] = len(self.worker.running)
        return report
