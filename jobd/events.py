"""The event relay: one LISTEN connection per node, events read from `job_events` by id, and a
fan-out to Server-Sent Events subscribers through bounded queues.

NOTIFY only wakes the relay, and the rows themselves come from the table. A relay that lost
its connection catches up by reading from its last id. A subscriber that reconnects with
`Last-Event-ID` gets the rows it missed from the table too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any
from uuid import UUID

import asyncpg

from jobd.log import fields
from jobd.models import iso
from jobd.store import Store
from jobd.worker import DATABASE_ERRORS

logger = logging.getLogger(__name__)

CHANNEL = "jobd_events"
READ_BATCH = 1_000
HEALTH_CHECK_SECONDS = 2.0  # how often an idle LISTEN connection is probed
UNSETTLED_RETRY_SECONDS = 0.05  # re-read delay while an older transaction is still open
RECONNECT_PAUSES = (0.2, 0.5, 1.0, 2.0, 5.0)
SUBSCRIBER_QUEUE_SIZE = 1_000


def event_json(row: asyncpg.Record | dict) -> dict[str, Any]:
    return {
        "id": row["id"],
        "jobId": str(row["job_id"]),
        "kind": row["kind"],
        "type": row["type"],
        "queue": row["queue"],
        "status": row["status"],
        "attempt": row["attempt"],
        "at": iso(row["at"]),
        "data": row["data"],
    }


@dataclasses.dataclass(frozen=True)
class EventFilter:
    job_id: UUID | None = None
    type: str | None = None
    status: str | None = None
    queue: str | None = None

    def matches(self, event: dict[str, Any]) -> bool:
        return (
            (self.job_id is None or event["jobId"] == str(self.job_id))
            and (self.type is None or event["type"] == self.type)
            and (self.status is None or event["status"] == self.status)
            and (self.queue is None or event["queue"] == self.queue)
        )


class Subscriber:
    """One SSE client's view of the stream. When its queue overflows it is marked for resync
    and receives nothing more, so a slow reader costs at most one full queue of memory."""

    def __init__(self, where: EventFilter, start_after: int, size: int):
        self.where = where
        self.start_after = start_after
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=size)
        self.overflowed = False

    def offer(self, event: dict[str, Any]) -> None:
        if self.overflowed or not self.where.matches(event):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self._drain()
            self.queue.put_nowait(None)

    def close(self) -> None:
        self._drain()
        self.queue.put_nowait(None)

    def _drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()


class Relay:
    def __init__(self, store: Store, on_event: Callable[[dict[str, Any]], None] = lambda event: None):
        self.store = store
        self.on_event = on_event
        self.last_id = 0
        self.subscribers: set[Subscriber] = set()
        self.connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._started = asyncio.Event()
        self._stopped = False

    async def wait_started(self) -> None:
        await self._started.wait()

    def subscribe(self, where: EventFilter, size: int = SUBSCRIBER_QUEUE_SIZE) -> Subscriber:
        """Register a subscriber that receives every matching event with an id above `last_id` now."""
        subscriber = Subscriber(where, self.last_id, size)
        if self._stopped:
            subscriber.close()
        else:
            self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def stop(self) -> None:
        """End every subscriber's stream, so that open SSE responses finish at shutdown."""
        self._stopped = True
        for subscriber in list(self.subscribers):
            subscriber.close()
        self.subscribers.clear()

    async def run(self) -> None:
        self.last_id = await self._initial_position()
        self._started.set()
        failures = 0
        while True:
            try:
                await self._listen_and_relay()
            except Exception as error:  # noqa: BLE001 - the loop must outlive any one failed pass
                self.connected.clear()
                if failures == 0:
                    logger.warning(
                        "LISTEN connection lost, reconnecting %s",
                        fields(error=repr(error), last_event_id=self.last_id),
                        exc_info=not isinstance(error, (*DATABASE_ERRORS, ConnectionError)),
                    )
                failures += 1
                await asyncio.sleep(RECONNECT_PAUSES[min(failures, len(RECONNECT_PAUSES)) - 1])
            else:
                failures = 0

    async def _initial_position(self) -> int:
        pause = 0
        while True:
            try:
                return await self.store.last_event_id()
            except DATABASE_ERRORS as error:
                logger.warning("cannot read the last event id, retrying %s", fields(error=repr(error)))
                pause = min(pause + 1, len(RECONNECT_PAUSES))
                await asyncio.sleep(RECONNECT_PAUSES[pause - 1])

    async def _listen_and_relay(self) -> None:
        connection = await self.store.listen_connection()
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _: lost.set())
        try:
            await connection.add_listener(CHANNEL, lambda *_: self._wake.set())
            self.connected.set()
            logger.info("listening for job events %s", fields(channel=CHANNEL, last_event_id=self.last_id))
            # Anything committed while the connection was down is read now.
            self._wake.set()
            while True:
                if lost.is_set():
                    raise ConnectionError("the LISTEN connection was terminated")
                woken = await self._wait_for_wake(HEALTH_CHECK_SECONDS)
                if woken:
                    await self._read_new_events()
                else:
                    await connection.fetchval("SELECT 1", timeout=HEALTH_CHECK_SECONDS)
        finally:
            self.connected.clear()
            connection.terminate()

    async def _wait_for_wake(self, timeout: float) -> bool:
        # asyncio.timeout, not wait_for: on Python 3.11, wait_for can swallow a cancellation
        # that arrives as the event fires, and the relay would then never stop.
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            return False
        self._wake.clear()
        return True

    async def _read_new_events(self) -> None:
        while True:
            rows = await self.store.events_after(self.last_id, READ_BATCH)
            for row in rows:
                self._dispatch(event_json(row))
                self.last_id = row["id"]
            if len(rows) < READ_BATCH:
                break
        # Committed rows above last_id that were not returned wait behind an older transaction
        # that is still running. Read again shortly instead of skipping them.
        if await self.store.events_pending_after(self.last_id):
            asyncio.get_running_loop().call_later(UNSETTLED_RETRY_SECONDS, self._wake.set)

    def _dispatch(self, event: dict[str, Any]) -> None:
        self.on_event(event)
        for subscriber in list(self.subscribers):
            if event["id"] > subscriber.start_after:
                subscriber.offer(event)
            if subscriber.overflowed:
                self.subscribers.discard(subscriber)
                logger.warning("SSE subscriber fell behind; sent resync and closed its stream %s", fields(last_event_id=event["id"]))
