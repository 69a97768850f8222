"""The worker pool: pop job ids from Redis, claim them in PostgreSQL, run their handlers.

The per-job path is: reserve a slot, pop ids, claim (QUEUED -> RUNNING, committed), resolve
the handler, run it under its timeout, classify the outcome, persist it in a batch. A
handler only ever starts after its claim committed, so a duplicate id in Redis is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import anyio
import asyncpg
import orjson

from jobd import broker as broker_module
from jobd.broker import Broker
from jobd.config import Settings
from jobd.handlers import JobContext, Registry
from jobd.log import fields
from jobd.models import Outcome, Status, retry_delay
from jobd.store import AttemptEnd, Store

logger = logging.getLogger(__name__)

POP_WAIT_SECONDS = 1.0  # how long an idle fetcher blocks on Redis before checking for shutdown
FLUSH_BATCH = 500
MAX_ERROR_CHARS = 2_000
MAX_TRACEBACK_CHARS = 20_000
RETRY_PAUSE_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)  # pause after consecutive failures of a loop step

# Errors of a statement or of the connection under it. InternalClientError is what a pooled
# connection raises after the server ended its session (pg_terminate_backend, a restart).
DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, asyncio.TimeoutError)


class Capacity:
    """A counting semaphore that hands out several slots at once, for batched pops."""

    def __init__(self, size: int):
        self.size = size
        self.free = size
        self._changed = asyncio.Condition()

    async def take(self, most: int) -> int:
        """Wait until at least one slot is free, then take up to `most` of them."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.free > 0)
            taken = min(most, self.free)
            self.free -= taken
            return taken

    async def give(self, count: int) -> None:
        if count <= 0:
            return
        async with self._changed:
            self.free += count
            self._changed.notify_all()

    @property
    def busy(self) -> int:
        return self.size - self.free


@dataclasses.dataclass
class Reservation:
    """Slots a fetcher holds for one queue; the ones it does not fill with claims go back."""

    queue: str
    slots: int


@dataclasses.dataclass
class RunningJob:
    """A claimed job on this node: its handler task and when its lease ends by this node's clock."""

    id: UUID
    type: str
    queue: str
    attempt: int
    task: asyncio.Task | None = None
    lease_deadline: float = 0.0
    finished: bool = False
    lost: bool = False


def pause_after(failures: int) -> float:
    return RETRY_PAUSE_SECONDS[min(failures, len(RETRY_PAUSE_SECONDS)) - 1] if failures else 0.0


class Worker:
    """Runs jobs from the configured queues within the global and per-queue concurrency bounds."""

    def __init__(
        self,
        store: Store,
        broker: Broker,
        registry: Registry,
        settings: Settings,
        on_retry_scheduled: Callable[[datetime], None] = lambda due_at: None,
    ):
        self.store = store
        self.broker = broker
        self.registry = registry
        self.settings = settings
        self.node = settings.node_name
        self.on_retry_scheduled = on_retry_scheduled
        self.capacity = Capacity(settings.concurrency)
        self.queue_capacity = {
            name: Capacity(limit or settings.concurrency) for name, limit in settings.queues.items()
        }
        self.running: dict[UUID, RunningJob] = {}
        self.completed_count = 0
        self._ends: list[AttemptEnd] = []
        self._ends_ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._forced = asyncio.Event()
        self._renewal: asyncio.Task | None = None
        self._fetchers: list[asyncio.Task] = []
        self._idle_queues: set[str] = set()  # queues whose fetcher is blocked on Redis
        self._fetcher_queues: dict[asyncio.Task, str] = {}
        self._heartbeat: asyncio.Task | None = None
        self._lease_guard: asyncio.Task | None = None
        self._flusher: asyncio.Task | None = None

    def start(self) -> None:
        for queue in self.settings.queues:
            self._fetchers.append(asyncio.create_task(self._fetch_loop(queue), name=f"jobd-fetch-{queue}"))
        self._fetcher_queues = dict(zip(self._fetchers, self.settings.queues))
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="jobd-heartbeat")
        self._lease_guard = asyncio.create_task(self._lease_guard_loop(), name="jobd-lease-guard")
        self._flusher = asyncio.create_task(self._flush_loop(), name="jobd-flush")
        logger.info(
            "worker started %s",
            fields(node=self.node, queues=",".join(self.settings.queues), concurrency=self.settings.concurrency),
        )

    # -- fetching and claiming -------------------------------------------------------------

    async def _fetch_loop(self, queue: str) -> None:
        failures = 0
        while not self._stopping.is_set():
            await asyncio.sleep(pause_after(failures))
            reserved = Reservation(queue, await self._reserve(queue))
            try:
                await self._fetch_and_claim(reserved)
            except broker_module.UNAVAILABLE as error:
                failures = self._log_failure(failures, "Redis unavailable, fetching paused", queue, error)
            except DATABASE_ERRORS as error:
                failures = self._log_failure(failures, "PostgreSQL unavailable, claiming paused", queue, error)
            except broker_module.BrokerError as error:
                failures = self._log_failure(failures, "Redis command failed, fetching paused", queue, error)
            else:
                if failures:
                    logger.info("fetching resumed %s", fields(queue=queue, node=self.node))
                failures = 0
            finally:
                # Also on cancellation at shutdown, so that no other fetcher waits for these slots.
                await self._release(queue, reserved.slots)

    def _log_failure(self, failures: int, message: str, queue: str, error: BaseException) -> int:
        if failures == 0:
            logger.warning("%s %s", message, fields(queue=queue, node=self.node, error=repr(error)))
        return failures + 1

    async def _reserve(self, queue: str) -> int:
        """Take at least one slot of the queue's bound and of the global bound, at most a batch.

        A fetcher waiting here has claimed nothing, so shutdown may cancel it at this point.
        """
        self._idle_queues.add(queue)
        try:
            from_queue = await self.queue_capacity[queue].take(self.settings.batch_size)
            try:
                from_global = await self.capacity.take(from_queue)
            except asyncio.CancelledError:
                await self.queue_capacity[queue].give(from_queue)
                raise
        finally:
            self._idle_queues.discard(queue)
        await self.queue_capacity[queue].give(from_queue - from_global)
        return from_global

    async def _release(self, queue: str, slots: int) -> None:
        await self.capacity.give(slots)
        await self.queue_capacity[queue].give(slots)

    async def _fetch_and_claim(self, reserved: Reservation) -> None:
        job_ids = await self._pop(reserved)
        if not job_ids:
            return
        if self._stopping.is_set():
            await self._push_back(reserved.queue, job_ids)
            return
        rows = await self.store.claim(job_ids, self.node, self.settings.lease_seconds)
        if len(rows) < len(job_ids):
            logger.debug("dropped %d ids that were not QUEUED %s", len(job_ids) - len(rows), fields(queue=reserved.queue))
        for row in rows:
            self._start_job(row)
        reserved.slots -= len(rows)

    async def _pop(self, reserved: Reservation) -> list[UUID]:
        queue = reserved.queue
        job_ids = await self.broker.pop(queue, reserved.slots)
        if job_ids or self._stopping.is_set():
            return job_ids

        # An empty queue: wait for one id holding a single slot, so that other queues can
        # use the rest of the global bound meanwhile.
        await self._release(queue, reserved.slots - 1)
        reserved.slots = 1
        self._idle_queues.add(queue)
        try:
            first = await self.broker.wait_pop(queue, POP_WAIT_SECONDS)
        finally:
            self._idle_queues.discard(queue)
        return [] if first is None else [first]

    async def _push_back(self, queue: str, job_ids: list[UUID]) -> None:
        # Popped during shutdown: the jobs are still QUEUED, so put the ids back for another node.
        with contextlib.suppress(*broker_module.UNAVAILABLE):
            await self.broker.push((queue, job_id, 0.0) for job_id in job_ids)

    # -- running ---------------------------------------------------------------------------

    def _start_job(self, row: asyncpg.Record) -> None:
        job = RunningJob(
            id=row["id"],
            type=row["type"],
            queue=row["queue"],
            attempt=row["attempt"],
            lease_deadline=time.monotonic() + self.settings.lease_seconds,
        )
        self.running[job.id] = job
        job.task = asyncio.create_task(self._execute(job, row), name=f"jobd-job-{job.id}")

    async def _execute(self, job: RunningJob, row: asyncpg.Record) -> None:
        logger.info("job started %s", fields(job_id=job.id, type=job.type, queue=job.queue, attempt=job.attempt, node=self.node))
        started = time.monotonic()
        end = await self._run_handler(row)
        duration_ms = round((time.monotonic() - started) * 1000)
        self._log_end(job, end, duration_ms)
        job.finished = True
        self._ends.append(end)
        self._ends_ready.set()

    async def _run_handler(self, row: asyncpg.Record) -> AttemptEnd:
        registration = self.registry.get(row["type"])
        if registration is None:
            message = f"no handler for job type {row['type']!r} on node {self.node}; registered: {', '.join(self.registry.types)}"
            return self._failure(row, Outcome.FAILED, message, None)

        context = JobContext(
            id=row["id"],
            type=row["type"],
            queue=row["queue"],
            payload=row["payload"],
            attempt=row["attempt"],
            max_attempts=row["attempt_base"] + row["max_retries"] + 1,
            priority=row["priority"],
            _report_progress=functools.partial(self.store.insert_progress, row["id"], row["attempt"], self.node),
        )
        timeout = row["timeout_seconds"]
        try:
            with anyio.CancelScope() as scope:
                if timeout:
                    scope.deadline = anyio.current_time() + timeout
                result = await self._call(registration, context)
            if scope.cancelled_caught:
                return self._failure(row, Outcome.TIMED_OUT, f"timed out after {timeout} s", None)
            result = _json_safe(result)
        except Exception as error:  # noqa: BLE001 - any handler error fails the attempt, never the worker
            return self._failure(row, Outcome.FAILED, _describe(error), traceback.format_exc())
        return AttemptEnd(row["id"], row["attempt"], self.node, Status.COMPLETED, Outcome.COMPLETED, result=result)

    async def _call(self, registration, context: JobContext) -> Any:
        if registration.is_async:
            return await registration.handler(context)
        # A thread cannot be interrupted: on timeout or shutdown the thread runs on, unowned.
        return await anyio.to_thread.run_sync(registration.handler, context, abandon_on_cancel=True)

    def _failure(self, row: asyncpg.Record, outcome: Outcome, error: str, trace: str | None) -> AttemptEnd:
        delay = retry_delay(
            row["attempt"] - row["attempt_base"], row["max_retries"], row["backoff_seconds"], self.settings.max_backoff_seconds
        )
        return AttemptEnd(
            row["id"],
            row["attempt"],
            self.node,
            Status.FAILED if delay is None else Status.PENDING,
            outcome,
            error=error[:MAX_ERROR_CHARS],
            traceback=trace[-MAX_TRACEBACK_CHARS:] if trace else None,
            retry_delay_seconds=delay,
        )

    def _log_end(self, job: RunningJob, end: AttemptEnd, duration_ms: int) -> None:
        common = fields(job_id=job.id, type=job.type, queue=job.queue, attempt=job.attempt, duration_ms=duration_ms)
        if end.status is Status.COMPLETED:
            logger.info("job completed %s", common)
        elif end.status is Status.PENDING:
            logger.info("job attempt failed, retry in %ss %s", f"{end.retry_delay_seconds:g}", fields(error=end.error) + " " + common)
        else:
            logger.error("job failed for good %s", fields(error=end.error) + " " + common)

    # -- persisting outcomes -----------------------------------------------------------------

    async def _flush_loop(self) -> None:
        failures = 0
        while True:
            await self._ends_ready.wait()
            await asyncio.sleep(pause_after(failures))
            batch = self._ends[:FLUSH_BATCH]
            try:
                persisted = await self.store.finish(batch)
            except Exception as error:  # noqa: BLE001 - the loop must outlive any one failed pass
                if failures == 0:
                    logger.warning(
                        "cannot persist %d job outcomes, will retry %s",
                        len(batch),
                        fields(error=repr(error)),
                        exc_info=not isinstance(error, DATABASE_ERRORS),
                    )
                failures += 1
                continue
            if failures:
                logger.info("persisting job outcomes resumed %s", fields(node=self.node))
            failures = 0
            del self._ends[: len(batch)]
            if not self._ends:
                self._ends_ready.clear()
            await self._settle(batch, persisted)

    async def _settle(self, batch: list[AttemptEnd], persisted: list[asyncpg.Record]) -> None:
        accepted = {row["id"]: row for row in persisted}
        for end in batch:
            row = accepted.get(end.job_id)
            if row is None:
                logger.warning(
                    "attempt outcome discarded: the job was cancelled or rescued meanwhile %s",
                    fields(job_id=end.job_id, attempt=end.attempt, node=self.node),
                )
            elif row["status"] == Status.PENDING:
                self.on_retry_scheduled(row["schedule_at"])
            if end.status is Status.COMPLETED:
                self.completed_count += 1
            job = self.running.pop(end.job_id, None)
            if job is not None:
                await self._release(job.queue, 1)

    # -- leases ------------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        failures = 0
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            held_ids = [job.id for job in self.running.values() if not job.lost]
            if not held_ids:
                continue
            sent_at = time.monotonic()
            try:
                still_held = await self._renew(held_ids)
            except Exception as error:  # noqa: BLE001 - the loop must outlive any one failed pass
                failures = self._log_failure(failures, "cannot renew leases", "*", error)
                continue
            if failures:
                logger.info("lease renewal resumed %s", fields(node=self.node))
            failures = 0
            for job_id in held_ids:
                job = self.running.get(job_id)
                if job is None:
                    continue
                if job_id in still_held:
                    job.lease_deadline = sent_at + self.settings.lease_seconds
                elif not job.finished:
                    self._abandon(job, "the job was cancelled or rescued by another node")

    async def _renew(self, held_ids: list[UUID]) -> set[UUID]:
        """Renew leases, giving up after one heartbeat so that a silent partition still lets
        this node stop its jobs before their leases expire.

        The renewal runs as its own task and is not awaited past the deadline: cancelling an
        asyncpg query waits for the connection's reset, which a partition can stall for minutes.
        While one renewal is stuck, no second one starts, so stuck renewals cannot drain the pool.
        """
        if self._renewal is None or self._renewal.done():
            self._renewal = asyncio.create_task(
                self.store.renew_leases(held_ids, self.node, self.settings.lease_seconds), name="jobd-renew-leases"
            )
            self._renewal.add_done_callback(_consume_result)
        done, _ = await asyncio.wait({self._renewal}, timeout=self.settings.heartbeat_seconds)
        if not done:
            raise TimeoutError(f"lease renewal took longer than {self.settings.heartbeat_seconds:g} s")
        return self._renewal.result()

    async def _lease_guard_loop(self) -> None:
        """Stop each job one heartbeat before its lease would expire unrenewed.

        Without a renewed lease another node may rescue the job, so it must stop first and
        never run twice at once. This runs apart from renewals, which may hang for a whole
        heartbeat, so a stop is never late. The margin of one heartbeat absorbs clock drift.
        """
        margin = self.settings.heartbeat_seconds
        while True:
            self._stop_jobs_past_deadline(margin)
            await asyncio.sleep(self._seconds_until_next_stop(margin))

    def _stop_jobs_past_deadline(self, margin: float) -> None:
        limit = time.monotonic() + margin
        for job in self._guarded_jobs():
            if job.lease_deadline <= limit:
                self._abandon(job, "its lease could not be renewed before it expired")

    def _seconds_until_next_stop(self, margin: float) -> float:
        earliest = min((job.lease_deadline for job in self._guarded_jobs()), default=None)
        if earliest is None:
            # A job claimed meanwhile has a whole lease ahead, so one heartbeat is soon enough.
            return margin
        return min(margin, max(0.0, earliest - margin - time.monotonic()))

    def _guarded_jobs(self) -> list[RunningJob]:
        return [job for job in self.running.values() if not job.finished and not job.lost]

    def _abandon(self, job: RunningJob, reason: str) -> None:
        logger.warning("stopping job %s %s", fields(reason=reason), fields(job_id=job.id, type=job.type, attempt=job.attempt))
        job.lost = True
        if job.task is not None:
            job.task.cancel()
            job.task.add_done_callback(lambda _: asyncio.ensure_future(self._forget(job)))

    async def _forget(self, job: RunningJob) -> None:
        if self.running.pop(job.id, None) is not None:
            await self._release(job.queue, 1)

    # -- shutdown ----------------------------------------------------------------------------

    async def stop(self, grace_seconds: float | None = None) -> None:
        """Stop claiming, let running jobs finish within the grace period, hand back the rest."""
        grace = self.settings.shutdown_grace_seconds if grace_seconds is None else grace_seconds
        self._stopping.set()
        # A fetcher blocked in its Redis wait holds no claim, so it can stop at once. An id that
        # the cancelled wait had already popped stays QUEUED, and recovery pushes it again.
        for task, queue in self._fetcher_queues.items():
            if queue in self._idle_queues:
                task.cancel()
        await asyncio.gather(*self._fetchers, return_exceptions=True)

        tasks = [job.task for job in self.running.values() if job.task is not None and not job.task.done()]
        if tasks:
            logger.info("waiting up to %gs for %d running jobs %s", grace, len(tasks), fields(node=self.node))
            await self._wait_unless_forced(tasks, grace)
        await self._hand_back_unfinished()
        await self._drain_outcomes(deadline=time.monotonic() + max(grace, 5.0))

        loops = [task for task in (self._heartbeat, self._lease_guard, self._flusher) if task is not None]
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        logger.info("worker stopped %s", fields(node=self.node, completed=self.completed_count))

    def force_stop(self) -> None:
        """End the grace period of a `stop()` in progress at once: unfinished jobs are handed back."""
        self._forced.set()

    async def _wait_unless_forced(self, tasks: list[asyncio.Task], grace: float) -> None:
        forced = asyncio.create_task(self._forced.wait(), name="jobd-force-stop")
        try:
            pending = set(tasks)
            deadline = time.monotonic() + grace
            while pending and not forced.done() and time.monotonic() < deadline:
                _, pending = await asyncio.wait(
                    pending | {forced}, timeout=deadline - time.monotonic(), return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(forced)
        finally:
            forced.cancel()

    async def _hand_back_unfinished(self) -> None:
        unfinished = [job for job in self.running.values() if not job.finished and not job.lost]
        if not unfinished:
            return
        for job in unfinished:
            if job.task is not None:
                job.task.cancel()
        await asyncio.gather(*(job.task for job in unfinished if job.task), return_exceptions=True)
        try:
            returned = await self.store.hand_back([(job.id, job.attempt) for job in unfinished], self.node)
        except DATABASE_ERRORS as error:
            logger.error(
                "cannot hand back %d interrupted jobs; recovery will rescue them when their leases expire %s",
                len(unfinished),
                fields(error=repr(error)),
            )
            return
        for job in unfinished:
            self.running.pop(job.id, None)
        logger.info("handed back %d interrupted jobs %s", len(returned), fields(node=self.node))
        await self._push_returned(returned)

    async def _push_returned(self, rows: list[asyncpg.Record]) -> None:
        try:
            await self.broker.push_jobs(rows)
        except broker_module.UNAVAILABLE as error:
            logger.warning("cannot push handed-back jobs; recovery will push them %s", fields(error=repr(error)))

    async def _drain_outcomes(self, deadline: float) -> None:
        while self._ends and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._ends:
            logger.error(
                "%d job outcomes could not be persisted before shutdown; those jobs will be rescued and run again %s",
                len(self._ends),
                fields(node=self.node),
            )


def _consume_result(task: asyncio.Task) -> None:
    # Retrieve the outcome of a renewal that is no longer awaited, so asyncio does not log it as never retrieved.
    if not task.cancelled():
        task.exception()


def _json_safe(result: Any) -> Any:
    """Return the result as stored, so a result that JSON cannot hold fails the attempt here."""
    try:
        return orjson.loads(orjson.dumps(result))
    except TypeError as error:
        raise TypeError(f"handler result is not JSON-serialisable: {error}") from None


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__

