"""Every Redis command jobd runs. Redis carries ready job ids as delivery hints only.

Each queue is one sorted set of job ids scored by `models.redis_score`, so ZPOPMIN yields the
highest priority first and, within a priority, the earliest due job. Every key carries the
same hash tag, so the layout also works on a Redis Cluster. Losing any of these keys loses
no job: recovery pushes QUEUED jobs again from PostgreSQL.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from uuid import UUID

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobd.models import redis_score

logger = logging.getLogger(__name__)

# Errors that mean "Redis is unreachable right now"; callers degrade and retry.
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)
BrokerError = RedisError


class Broker:
    def __init__(self, client: redis.Redis, prefix: str):
        self.client = client
        self.prefix = prefix

    @classmethod
    def connect(cls, url: str, prefix: str) -> Broker:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=5,
            health_check_interval=15,
            max_connections=200,
        )
        return cls(client, prefix)

    async def close(self) -> None:
        await self.client.aclose()

    def queue_key(self, queue: str) -> str:
        return f"{{{self.prefix}}}:queue:{queue}"

    async def push(self, entries: Iterable[tuple[str, UUID, float]], *, only_missing: bool = False) -> int:
        """Add `(queue, job_id, score)` entries in one round trip; returns how many ids were new.

        With `only_missing`, an id already present keeps its score (ZADD NX), which makes
        repeated pushes by recovery harmless.
        """
        by_queue: dict[str, dict[str, float]] = defaultdict(dict)
        for queue, job_id, score in entries:
            by_queue[queue][str(job_id)] = score
        if not by_queue:
            return 0
        async with self.client.pipeline(transaction=False) as pipe:
            for queue, members in by_queue.items():
                pipe.zadd(self.queue_key(queue), members, nx=only_missing)
            added = await pipe.execute()
        return sum(added)

    async def push_jobs(self, rows: Iterable[Mapping], *, only_missing: bool = False) -> int:
        """Push job rows (with queue, id, priority and schedule_at) to their queues, scored by `redis_score`."""
        return await self.push(
            ((row["queue"], row["id"], redis_score(row["priority"], row["schedule_at"])) for row in rows),
            only_missing=only_missing,
        )

    async def pop(self, queue: str, count: int) -> list[UUID]:
        """Take up to `count` ids from the head of `queue` without waiting."""
        popped = await self.client.zpopmin(self.queue_key(queue), count)
        return [UUID(member.decode()) for member, _ in popped]

    async def wait_pop(self, queue: str, timeout_seconds: float) -> UUID | None:
        """Take one id from the head of `queue`, waiting up to `timeout_seconds` for one to arrive."""
        popped = await self.client.bzpopmin(self.queue_key(queue), timeout=timeout_seconds)
        if popped is None:
            return None
        _, member, _ = popped
        return UUID(member.decode())

    async def size(self, queue: str) -> int:
        return await self.client.zcard(self.queue_key(queue))

    async def remove(self, queue: str, job_ids: Iterable[UUID]) -> int:
        members = [str(job_id) for job_id in job_ids]
        if not members:
            return 0
        return await self.client.zrem(self.queue_key(queue), *members)

    async def ping(self) -> None:
        await self.client.ping()
