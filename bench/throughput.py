"""Measure no-op jobs per second through the whole path: insert, push, pop, claim, run, finish.

Usage: python bench/throughput.py [--jobs N] [--concurrency C] [--batch B]
With JOBD_DATABASE_URL and JOBD_REDIS_URL set, it uses those servers and empties their jobd
tables first. Otherwise it starts embedded servers in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time

import asyncpg

from jobd import JobContext, Registry
from jobd.config import Settings
from jobd.embedded import temporary_servers
from jobd.node import Node
from jobd.validation import parse_job

registry = Registry()


@registry.handler("NOOP")
async def noop(job: JobContext) -> None:
    return None


async def reset(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        exists = await connection.fetchval("SELECT to_regclass('jobs') IS NOT NULL")
        if exists:
            await connection.execute("TRUNCATE jobs, job_attempts, job_events, job_counts, job_count_deltas, job_finishes")
    finally:
        await connection.close()


async def run(arguments: argparse.Namespace, database_url: str, redis_url: str) -> None:
    await reset(database_url)
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=f"jobdbench{os.getpid()}",
        concurrency=arguments.concurrency,
        batch_size=arguments.batch,
    )
    node = await Node.open(settings, registry)
    jobs = [parse_job({"type": "NOOP"}, registry, 1024) for _ in range(arguments.jobs)]

    await node.start()
    started = time.perf_counter()
    for offset in range(0, len(jobs), 1_000):
        await node.submit(jobs[offset : offset + 1_000])
    submitted = time.perf_counter()

    while node.worker.completed_count < arguments.jobs:
        await asyncio.sleep(0.05)
    finished = time.perf_counter()
    await node.stop(grace_seconds=1)

    total = finished - started
    print(f"jobs:            {arguments.jobs}")
    print(f"concurrency:     {arguments.concurrency}, batch {arguments.batch}")
    print(f"submit rate:     {arguments.jobs / (submitted - started):,.0f} jobs/s (batches of 1000)")
    print(f"end to end:      {arguments.jobs / total:,.0f} jobs/s ({total:.2f} s from first insert to last completion)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--batch", type=int, default=200)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    database_url, redis_url = os.environ.get("JOBD_DATABASE_URL"), os.environ.get("JOBD_REDIS_URL")
    if database_url and redis_url:
        asyncio.run(run(arguments, database_url, redis_url))
        return
    with temporary_servers(prefix="jobd-bench-") as (database_url, redis_url):
        asyncio.run(run(arguments, database_url, redis_url))


if __name__ == "__main__":
    main()
