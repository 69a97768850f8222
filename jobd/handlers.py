"""The registry that maps a job type to its handler, and the context a handler receives.

A handler is an `async def` or a plain function taking a `JobContext`. It returns a
JSON-serialisable result, which is stored on the job, or raises to fail the attempt. Plain
functions run in a worker thread (anyio.to_thread) instead of on the event loop.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from jobd.errors import ConfigError

TYPE_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,99}$")

Handler = Callable[["JobContext"], Any] | Callable[["JobContext"], Awaitable[Any]]


@dataclasses.dataclass(frozen=True)
class JobContext:
    """The job a handler runs: its identity, payload and attempt number."""

    id: UUID
    type: str
    queue: str
    payload: Any
    attempt: int
    max_attempts: int
    priority: int = 0
    _report_progress: Callable[[dict], Awaitable[bool]] | None = dataclasses.field(default=None, repr=False, compare=False)

    async def progress(self, percent: float | None = None, message: str | None = None) -> bool:
        """Publish a `progress` event for this attempt; returns False once the job is no longer this attempt's.

        Call it from `async` handlers only: plain functions run in a thread.
        """
        if percent is not None and not 0 <= percent <= 100:
            raise ValueError(f"percent must be from 0 to 100; got {percent}")
        if self._report_progress is None:
            return False
        data = {key: value for key, value in (("percent", percent), ("message", message)) if value is not None}
        return await self._report_progress(data)


@dataclasses.dataclass(frozen=True)
class Registration:
    handler: Handler
    is_async: bool


class Registry:
    """Job types and their handlers. Use `@registry.handler("TYPE")` or `registry.register`."""

    def __init__(self) -> None:
        self._handlers: dict[str, Registration] = {}

    def register(self, job_type: str, handler: Handler) -> None:
        if not TYPE_PATTERN.match(job_type):
            raise ConfigError(
                f"job type {job_type!r} is invalid: start with a letter, then up to 99 letters, digits or _.:-"
            )
        if job_type in self._handlers:
            raise ConfigError(f"job type {job_type!r} is registered twice")
        self._handlers[job_type] = Registration(handler, inspect.iscoroutinefunction(handler))

    def handler(self, job_type: str) -> Callable[[Handler], Handler]:
        def decorate(function: Handler) -> Handler:
            self.register(job_type, function)
            return function

        return decorate

    def get(self, job_type: str) -> Registration | None:
        return self._handlers.get(job_type)

    @property
    def types(self) -> list[str]:
        return sorted(self._handlers)

    def __contains__(self, job_type: object) -> bool:
        return job_type in self._handlers


def load_registry(spec: str | None) -> Registry:
    """Import the registry named by `module` or `module:attribute`; None means the demo types.

    With a bare module name, its `registry` attribute is used.
    """
    if spec is None:
        from jobd.demo import registry

        return registry
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"cannot import the handler module {module_name!r} (JOBD_APP / --app): {error}") from error
    registry = getattr(module, attribute or "registry", None)
    if not isinstance(registry, Registry):
        raise ConfigError(
            f"{module_name}.{attribute or 'registry'} is not a jobd.Registry: "
            "define `registry = jobd.Registry()` in that module, or name another attribute as module:attribute"
        )
    return registry
