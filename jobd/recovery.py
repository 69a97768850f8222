"""Recovery: rescues RUNNING jobs whose node died, re-pushes QUEUED ids that Redis lost, and
runs maintenance (folding counters, pruning old events).

Each pass is safe on every node at once: rescues lock rows with SKIP LOCKED, pushes use
ZADD NX, and maintenance runs under an advisory lock on one node at a time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import datetime

import asyncpg

from jobd import broker as broker_module
from jobd.broker import Broker
from jobd.config import Settings
from jobd.log import fields
from jobd.models import Outcome, Status, iso, retry_delay
from jobd.store import AttemptEnd, Store
from jobd.worker import DATABASE_ERRORS, pause_after

logger = logging.getLogger(__name__)

REQUEUE_PAGE = 1_000
REQUEUE_PAGES_PER_PASS = 20
FINISHES_WINDOW_SECONDS = 15 * 60 + 60
PRUNE_BATCH = 10_000


@dataclasses.dataclass
class PassResult:
    rescued: int = 0
    requeued: int = 0
    maintenance: dict[str, int] | None = None

    @property
    def did_work(self) -> bool:
        pruned = self.maintenance and (self.maintenance["events_pruned"] or self.maintenance["finishes_pruned"])
        return bool(self.rescued or self.requeued or pruned)


class Recovery:
    def __init__(self, store: Store, broker: Broker, settings: Settings, on_retry_scheduled=lambda: None):
        self.store = store
        self.broker = broker
        self.settings = settings
        self.on_retry_scheduled = on_retry_scheduled
        self._requeue_cursor: tuple[datetime, object] | None = None

    async def run_once(self, now: datetime | None = None) -> PassResult:
        result = PassResult()
        result.rescued = await self.rescue_expired(now)
        try:
            result.requeued = await self.requeue_lost(now)
        except broker_module.UNAVAILABLE as error:
            logger.warning("cannot re-push queued jobs while Redis is unavailable %s", fields(error=repr(error)))
        result.maintenance = await self.store.run_maintenance(
            self.settings.event_retention_hours * 3600, FINISHES_WINDOW_SECONDS, PRUNE_BATCH
        )
        return result

    async def rescue_expired(self, now: datetime | None = None) -> int:
        """Fail the current attempt of each RUNNING job whose lease expired; the retry rule applies."""
        rescued = 0
        while True:
            rows = await self.store.rescue_expired(self.settings.batch_size, self._rescue_decision, now)
            rescued += len(rows)
            for row in rows:
                logger.warning("rescued job whose lease expired %s", fields(job_id=row["id"], status=row["status"]))
            if any(row["status"] == Status.PENDING for row in rows):
                self.on_retry_scheduled()
            if len(rows) < self.settings.batch_size:
                return rescued

    def _rescue_decision(self, row: asyncpg.Record) -> AttemptEnd:
        delay = retry_delay(
            row["attempt"] - row["attempt_base"], row["max_retries"], row["backoff_seconds"], self.settings.max_backoff_seconds
        )
        return AttemptEnd(
            job_id=row["id"],
            attempt=row["attempt"],
            node=row["node"],
            status=Status.FAILED if delay is None else Status.PENDING,
            outcome=Outcome.RESCUED,
            error=f"lease expired at {iso(row['lease_expires_at'])}: node {row['node']} stopped renewing it (crashed or lost its connection)",
            retry_delay_seconds=delay,
        )

    async def requeue_lost(self, now: datetime | None = None) -> int:
        """Push again the ids of jobs QUEUED for longer than the requeue delay; returns how many were missing.

        Pages through the backlog with a cursor kept between passes, so one pass stays bounded
        however many jobs wait.
        """
        missing = 0
        for _ in range(REQUEUE_PAGES_PER_PASS):
            rows = await self.store.stale_queued(self.settings.requeue_after_seconds, self._requeue_cursor, REQUEUE_PAGE, now)
            if rows:
                missing += await self.broker.push_jobs(rows, only_missing=True)
                self._requeue_cursor = (rows[-1]["queued_at"], rows[-1]["id"])
            if len(rows) < REQUEUE_PAGE:
                self._requeue_cursor = None
                break
        if missing:
            logger.warning("re-pushed %d queued jobs that Redis had lost", missing)
        return missing

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                result = await self.run_once()
            except Exception as error:  # noqa: BLE001 - the loop must outlive any one failed pass
                if failures == 0:
                    logger.warning(
                        "recovery pass failed, retrying %s", fields(error=repr(error)), exc_info=not isinstance(error, DATABASE_ERRORS)
                    )
                failures += 1
                await asyncio.sleep(pause_after(failures))
                continue
            if failures:
                logger.info("recovery resumed after %d failed passes", failures)
            failures = 0
            if result.did_work:
                logger.info(
                    "recovery pass %s",
                    fields(rescued=result.rescued, requeued=result.requeued, **(result.maintenance or {})),
                )
            await asyncio.sleep(self.settings.rescue_interval_seconds)
