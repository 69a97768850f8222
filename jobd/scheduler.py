"""The scheduler: moves due PENDING jobs to QUEUED in batches and pushes their ids to Redis.

It sleeps until the next job falls due by the database clock, and wakes early when
this node submits a scheduled job, schedules a retry, or hears of one from another node.
"""

from __future__ import annotations

import asyncio
import logging

from jobd import broker as broker_module
from jobd.broker import Broker
from jobd.config import Settings
from jobd.log import fields
from jobd.store import Store
from jobd.worker import DATABASE_ERRORS, pause_after

logger = logging.getLogger(__name__)

# Maximum sleep of the scheduler. It bounds the delay of a wake-up that was missed, such as
# one sent while the LISTEN connection was down.
MAX_SLEEP_SECONDS = 5.0


class Scheduler:
    def __init__(self, store: Store, broker: Broker, settings: Settings):
        self.store = store
        self.broker = broker
        self.settings = settings
        self._wake = asyncio.Event()

    def nudge(self) -> None:
        """Wake the loop to look at due times again, for example after a job was scheduled."""
        self._wake.set()

    async def run_once(self, now=None) -> int:
        """Move every job due by `now` (default: the database clock) to QUEUED; returns how many."""
        moved_total = 0
        while True:
            moved = await self.store.move_due(self.settings.batch_size, now)
            moved_total += len(moved)
            await self._push(moved)
            if len(moved) < self.settings.batch_size:
                return moved_total

    async def _push(self, rows) -> None:
        if not rows:
            return
        try:
            await self.broker.push_jobs(rows)
        except broker_module.UNAVAILABLE as error:
            # The jobs are QUEUED in PostgreSQL, so recovery pushes them once Redis is back.
            logger.warning("cannot push %d due jobs to Redis; recovery will push them %s", len(rows), fields(error=repr(error)))

    async def run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                moved = await self.run_once()
                sleep_for = await self.store.seconds_until_next_due()
            except Exception as error:  # noqa: BLE001 - the loop must outlive any one failed pass
                if failures == 0:
                    logger.warning(
                        "scheduler pass failed, retrying %s", fields(error=repr(error)), exc_info=not isinstance(error, DATABASE_ERRORS)
                    )
                failures += 1
                await asyncio.sleep(pause_after(failures))
                continue
            if failures:
                logger.info("scheduler recovered after %d failed passes", failures)
            failures = 0
            if moved:
                logger.info("moved %d due jobs to QUEUED", moved)
            await self._sleep(MAX_SLEEP_SECONDS if sleep_for is None else min(max(sleep_for, 0.0), MAX_SLEEP_SECONDS))

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass
