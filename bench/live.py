"""Measure the live side: event lag to SSE subscribers, server memory with 200 subscribers,
and API and dashboard load times with a million jobs in the table.

Usage: python bench/live.py [--subscribers 200] [--jobs 1000000]
It starts embedded servers in a temporary folder and `jobd serve` as a separate process, so
the memory figure is the server's alone. The dashboard load needs /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx

from jobd.embedded import free_port, temporary_servers

CHROMIUM = "/usr/bin/chromium"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def wait_healthy(base: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            try:
                if (await client.get(f"{base}/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("jobd serve did not become healthy")


async def subscriber(client: httpx.AsyncClient, base: str, expected: int, lags: list[float], ready: asyncio.Event, counter: list[int]) -> None:
    seen = 0
    async with client.stream("GET", f"{base}/events", params={"type": "REPORT_GENERATION"}) as response:
        counter[0] += 1
        if counter[0] == counter[1]:
            ready.set()
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            lags.append(time.time() - datetime.fromisoformat(event["at"]).timestamp())
            seen += 1
            if seen >= expected:
                return


async def measure_events(base: str, server_pid: int, subscribers: int, jobs: int) -> None:
    idle_rss = rss_mib(server_pid)
    lags: list[float] = []
    ready = asyncio.Event()
    counter = [0, subscribers]
    limits = httpx.Limits(max_connections=subscribers + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        readers = [asyncio.create_task(subscriber(client, base, jobs * 3, lags, ready, counter)) for _ in range(subscribers)]
        await asyncio.wait_for(ready.wait(), 60)
        await asyncio.sleep(1)
        connected_rss = rss_mib(server_pid)
        for offset in range(0, jobs, 100):
            batch = [{"type": "REPORT_GENERATION", "payload": {"n": n}} for n in range(offset, min(offset + 100, jobs))]
            await client.post(f"{base}/jobs/batch", json={"jobs": batch})
        peak_rss = connected_rss
        while not all(reader.done() for reader in readers):
            peak_rss = max(peak_rss, rss_mib(server_pid))
            await asyncio.sleep(0.2)
    lags.sort()
    print(f"subscribers:            {subscribers}, each receiving {jobs * 3} events ({jobs} jobs x created/running/completed)")
    print(f"event lag (DB commit -> client), median {statistics.median(lags) * 1000:.1f} ms, "
          f"p95 {lags[int(len(lags) * 0.95)] * 1000:.1f} ms, p99 {lags[int(len(lags) * 0.99)] * 1000:.1f} ms")
    print(f"server RSS:             idle {idle_rss:.0f} MiB, with {subscribers} subscribers {connected_rss:.0f} MiB, peak while streaming {peak_rss:.0f} MiB")


async def fill_million(database_url: str, count: int) -> float:
    started = time.perf_counter()
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            """
            INSERT INTO jobs (id, type, queue, priority, payload, status, schedule_at, attempt,
                              max_retries, backoff_seconds, created_at, updated_at, finished_at)
            SELECT gen_random_uuid(), (ARRAY['REPORT_GENERATION', 'DATA_SYNC', 'ALWAYS_FAIL'])[1 + n % 3], 'default', 0,
                   jsonb_build_object('n', n), CASE WHEN n % 10 = 0 THEN 'FAILED' ELSE 'COMPLETED' END,
                   now(), 1, 3, 30, now(), now(), now()
            FROM generate_series(1, $1) AS n
            """,
            count,
        )
        await connection.execute("ANALYZE jobs")
    finally:
        await connection.close()
    return time.perf_counter() - started


async def time_api(base: str) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        for path in ("/jobs?limit=50", "/jobs?status=FAILED&limit=50", "/jobs?type=DATA_SYNC&limit=50", "/stats"):
            timings = []
            for _ in range(5):
                started = time.perf_counter()
                response = await client.get(f"{base}{path}")
                timings.append(time.perf_counter() - started)
                response.raise_for_status()
            print(f"GET {path:<32} median {statistics.median(timings) * 1000:.1f} ms")


async def time_dashboard(base: str) -> None:
    if not Path(CHROMIUM).exists():
        print("dashboard load: skipped, /usr/bin/chromium is missing")
        return
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        timings = []
        for _ in range(3):
            page = await browser.new_page()
            started = time.perf_counter()
            await page.goto(base + "/")
            await page.wait_for_selector("[data-testid=job-row]", timeout=30_000)
            timings.append(time.perf_counter() - started)
            await page.close()
        await browser.close()
    print(f"dashboard with rows shown: median {statistics.median(timings) * 1000:.0f} ms (navigation to first table rows, {len(timings)} loads)")


async def run(arguments: argparse.Namespace, database_url: str, redis_url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "JOBD_DATABASE_URL": database_url, "JOBD_REDIS_URL": redis_url, "JOBD_PORT": str(port),
           "JOBD_LOG_LEVEL": "WARNING", "JOBD_CONCURRENCY": "200"}
    server = subprocess.Popen([sys.executable, "-m", "jobd", "serve"], env=env)
    try:
        await wait_healthy(base)
        await measure_events(base, server.pid, arguments.subscribers, arguments.events_jobs)
        seconds = await fill_million(database_url, arguments.jobs)
        print(f"inserted {arguments.jobs:,} finished jobs in {seconds:.1f} s")
        await time_api(base)
        await time_dashboard(base)
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--events-jobs", type=int, default=200, help="jobs submitted while the subscribers listen")
    parser.add_argument("--jobs", type=int, default=1_000_000, help="rows put in the jobs table for the load timings")
    arguments = parser.parse_args()
    with temporary_servers(prefix="jobd-bench-") as (database_url, redis_url):
        asyncio.run(run(arguments, database_url, redis_url))


if __name__ == "__main__":
    main()
