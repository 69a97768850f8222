"""The `jobd` command: serve, worker, migrate, enqueue."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator

import orjson
import uvicorn

from jobd import log
from jobd.config import Settings, from_env, parse_queues
from jobd.embedded import EmbeddedServers
from jobd.errors import InvalidInput, JobdError
from jobd.handlers import load_registry
from jobd.log import fields
from jobd.node import Node, migrations_folder
from jobd.store import Store
from jobd.validation import parse_job

logger = logging.getLogger("jobd.cli")


class _Server(uvicorn.Server):
    """Uvicorn without its own signal handling: the node owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


@contextlib.asynccontextmanager
async def _servers(settings: Settings) -> AsyncIterator[Settings]:
    """Yield settings with database and Redis URLs, starting embedded servers when none are set."""
    if not settings.embedded:
        yield settings
        return
    if settings.database_url or settings.redis_url:
        logger.warning("only one of JOBD_DATABASE_URL and JOBD_REDIS_URL is set; starting both embedded servers")
    logger.info("no JOBD_DATABASE_URL/JOBD_REDIS_URL: starting embedded servers %s", fields(data_dir=settings.data_dir.resolve()))
    embedded = EmbeddedServers(settings.data_dir)
    database_url, redis_url = await asyncio.to_thread(embedded.start)
    try:
        yield settings.replace(database_url=database_url, redis_url=redis_url)
    finally:
        await asyncio.to_thread(embedded.stop)


class _Stopper:
    """First SIGINT/SIGTERM: graceful stop. Second: stop at once, handing back running jobs."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.forced = asyncio.Event()
        self.on_first = lambda: None

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._handle, sig)

    def _handle(self, sig: int) -> None:
        if self.requested.is_set():
            logger.warning("second %s: stopping now", signal.Signals(sig).name)
            self.forced.set()
            return
        logger.info("%s received: stopping gracefully (send it again to stop at once)", signal.Signals(sig).name)
        self.requested.set()
        self.on_first()


async def _stop_node(node: Node, stopper: _Stopper) -> None:
    stop = asyncio.create_task(node.stop(), name="jobd-stop")
    forced = asyncio.create_task(stopper.forced.wait(), name="jobd-forced")
    await asyncio.wait({stop, forced}, return_when=asyncio.FIRST_COMPLETED)
    if not stop.done() and node.worker is not None:
        node.worker.force_stop()
    await stop
    forced.cancel()


async def serve(settings: Settings, *, http: bool) -> None:
    registry = load_registry(settings.app)
    stopper = _Stopper()
    stopper.install()
    async with _servers(settings) as settings:
        node = await Node.open(settings, registry)
        await node.start()
        try:
            if http:
                await _serve_http(node, settings, stopper)
            else:
                await stopper.requested.wait()
        finally:
            await _stop_node(node, stopper)


async def _serve_http(node: Node, settings: Settings, stopper: _Stopper) -> None:
    from jobd.api import create_app

    config = uvicorn.Config(
        create_app(node),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    server = _Server(config)

    def begin_shutdown() -> None:
        node.relay.stop()
        server.handle_exit(signal.SIGTERM, None)

    stopper.on_first = begin_shutdown
    logger.info("dashboard and API on http://%s:%d/", settings.host, settings.port)
    await server.serve()
    if not server.started:
        raise JobdError(f"could not listen on {settings.host}:{settings.port}; is another process using the port? Set JOBD_PORT")


async def migrate(settings: Settings) -> None:
    async with _servers(settings) as settings:
        store = await Store.connect(settings.database_url)
        try:
            applied = await store.migrate(migrations_folder())
        finally:
            await store.close()
    print(f"applied {len(applied)} migrations: {', '.join(applied) or 'none pending'}")


async def enqueue(settings: Settings, arguments: argparse.Namespace) -> None:
    registry = load_registry(settings.app)
    body = {"type": arguments.type, "payload": arguments.payload, "queue": arguments.queue, "priority": arguments.priority}
    if arguments.schedule_at:
        body["scheduleAt"] = arguments.schedule_at
    if arguments.max_retries is not None or arguments.backoff_seconds is not None:
        body["retryPolicy"] = {
            key: value
            for key, value in (("maxRetries", arguments.max_retries), ("backoffSeconds", arguments.backoff_seconds))
            if value is not None
        }
    job = parse_job(body, registry, settings.max_payload_bytes)
    async with _servers(settings) as settings:
        node = await Node.open(settings, registry, run_worker=False)
        try:
            rows = await node.submit([job])
        finally:
            await node.broker.close()
            await node.store.close()
    print(orjson.dumps({"id": str(rows[0]["id"]), "status": rows[0]["status"]}).decode())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jobd", description="An asynchronous job server on PostgreSQL and Redis.")
    commands = parser.add_subparsers(dest="command", required=True)

    def add_common(command: argparse.ArgumentParser) -> None:
        command.add_argument("--app", help="module (or module:attribute) holding your jobd.Registry (JOBD_APP); default: the sample types")
        command.add_argument("--data-dir", help="folder of the embedded servers' files (JOBD_DATA_DIR; default .jobd)")

    def add_worker_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--queues", help="queues to work, as name[=limit],... (JOBD_QUEUES; default 'default')")
        command.add_argument("--concurrency", type=int, help="jobs run at once by this process (JOBD_CONCURRENCY; default 100)")

    serve_command = commands.add_parser("serve", help="run the API, dashboard, scheduler, recovery and workers")
    add_common(serve_command)
    add_worker_options(serve_command)
    serve_command.add_argument("--host", help="address to listen on (JOBD_HOST; default 127.0.0.1)")
    serve_command.add_argument("--port", type=int, help="port to listen on (JOBD_PORT; default 8081)")

    worker_command = commands.add_parser("worker", help="run scheduler, recovery and workers, without HTTP")
    add_common(worker_command)
    add_worker_options(worker_command)

    migrate_command = commands.add_parser("migrate", help="apply pending database migrations and exit")
    add_common(migrate_command)

    enqueue_command = commands.add_parser("enqueue", help="submit one job and print its id")
    add_common(enqueue_command)
    enqueue_command.add_argument("type", help="the job type, for example REPORT_GENERATION")
    enqueue_command.add_argument("--payload", default="{}", help="the payload as JSON (default {})")
    enqueue_command.add_argument("--queue", default="default")
    enqueue_command.add_argument("--priority", type=int, default=0, help="higher runs first, -1000 to 1000")
    enqueue_command.add_argument("--schedule-at", help="ISO 8601 time with a UTC offset")
    enqueue_command.add_argument("--max-retries", type=int)
    enqueue_command.add_argument("--backoff-seconds", type=int)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        overrides = {
            "app": arguments.app,
            "data_dir": arguments.data_dir,
            "host": getattr(arguments, "host", None),
            "port": getattr(arguments, "port", None),
            "concurrency": getattr(arguments, "concurrency", None),
            "queues": parse_queues(arguments.queues) if getattr(arguments, "queues", None) else None,
        }
        if overrides["data_dir"] is not None:
            from pathlib import Path

            overrides["data_dir"] = Path(overrides["data_dir"])
        settings = from_env(**overrides)
        log.configure(settings.log_level)
        if arguments.command in ("serve", "worker"):
            asyncio.run(serve(settings, http=arguments.command == "serve"))
        elif arguments.command == "migrate":
            asyncio.run(migrate(settings))
        else:
            asyncio.run(enqueue(settings, arguments))
    except InvalidInput as error:
        print(f"jobd: invalid {error.field}: {error.message}", file=sys.stderr)
        return 2
    except JobdError as error:
        print(f"jobd: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
