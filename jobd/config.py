"""Settings read once from `JOBD_*` environment variables and CLI flags, validated when built."""

from __future__ import annotations

import dataclasses
import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path

from jobd.errors import ConfigError

QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every tunable of a jobd process. Durations are seconds, sizes are bytes."""

    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".jobd")
    host: str = "127.0.0.1"
    port: int = 8081
    app: str | None = None
    queues: Mapping[str, int | None] = dataclasses.field(default_factory=lambda: {"default": None})
    concurrency: int = 100
    batch_size: int = 100
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 5.0
    rescue_interval_seconds: float = 5.0
    requeue_after_seconds: float = 10.0
    shutdown_grace_seconds: float = 10.0
    max_backoff_seconds: int = 86_400
    max_payload_bytes: int = 1_048_576
    event_retention_hours: float = 72.0
    redis_prefix: str = "jobd"
    node_name: str = dataclasses.field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        _require(self.port, "JOBD_PORT", 0 <= self.port <= 65535, "an integer from 0 to 65535")
        _require(self.concurrency, "JOBD_CONCURRENCY", 1 <= self.concurrency <= 10_000, "an integer from 1 to 10000")
        _require(self.batch_size, "JOBD_BATCH_SIZE", 1 <= self.batch_size <= 5_000, "an integer from 1 to 5000")
        _require(self.lease_seconds, "JOBD_LEASE_SECONDS", self.lease_seconds >= 1, "at least 1")
        _require(
            self.heartbeat_seconds,
            "JOBD_HEARTBEAT_SECONDS",
            0 < self.heartbeat_seconds <= self.lease_seconds / 2,
            f"more than 0 and at most half of JOBD_LEASE_SECONDS ({self.lease_seconds / 2:g})",
        )
        _require(self.rescue_interval_seconds, "JOBD_RESCUE_INTERVAL_SECONDS", self.rescue_interval_seconds > 0, "more than 0")
        _require(self.requeue_after_seconds, "JOBD_REQUEUE_AFTER_SECONDS", self.requeue_after_seconds >= 0, "0 or more")
        _require(self.shutdown_grace_seconds, "JOBD_SHUTDOWN_GRACE_SECONDS", self.shutdown_grace_seconds >= 0, "0 or more")
        _require(self.max_backoff_seconds, "JOBD_MAX_BACKOFF_SECONDS", self.max_backoff_seconds >= 1, "at least 1")
        _require(self.max_payload_bytes, "JOBD_MAX_PAYLOAD_BYTES", 1_024 <= self.max_payload_bytes <= 64 * 1_048_576, "from 1024 to 67108864")
        _require(self.event_retention_hours, "JOBD_EVENT_RETENTION_HOURS", self.event_retention_hours > 0, "more than 0")
        _require(self.redis_prefix, "JOBD_REDIS_PREFIX", bool(re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", self.redis_prefix)), "1 to 64 letters, digits or _.:-")
        _require(self.log_level, "JOBD_LOG_LEVEL", self.log_level.upper() in {"DEBUG", "INFO", "WARNING", "ERROR"}, "DEBUG, INFO, WARNING or ERROR")
        _require(self.node_name, "JOBD_NODE_NAME", 0 < len(self.node_name) <= 128, "1 to 128 characters")
        if not self.queues:
            raise ConfigError("JOBD_QUEUES is empty: name at least one queue, for example 'default' or 'default=50,emails=10'")

    @property
    def embedded(self) -> bool:
        """Whether this process must start its own PostgreSQL and Redis."""
        return not (self.database_url and self.redis_url)

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)


def _require(value: object, name: str, ok: bool, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{name} must be {rule}; got {value!r}")


def parse_queues(text: str) -> dict[str, int | None]:
    """Parse `name[=limit],...`: the queues this node works, each with an optional concurrency limit."""
    queues: dict[str, int | None] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, limit = item.partition("=")
        name = name.strip()
        if not QUEUE_NAME.match(name):
            raise ConfigError(f"JOBD_QUEUES has an invalid queue name {name!r}: use 1 to 64 letters, digits or _.:-")
        queues[name] = _parse_int(limit.strip(), "JOBD_QUEUES", minimum=1) if limit else None
    return queues


def _parse_int(raw: str, name: str, minimum: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer; got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}; got {value}")
    return value


def _parse_float(raw: str, name: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number; got {raw!r}") from None


_INTEGERS = {"port", "concurrency", "batch_size", "max_backoff_seconds", "max_payload_bytes"}
_FLOATS = {
    "lease_seconds",
    "heartbeat_seconds",
    "rescue_interval_seconds",
    "requeue_after_seconds",
    "shutdown_grace_seconds",
    "event_retention_hours",
}
_STRINGS = {"database_url", "redis_url", "host", "app", "redis_prefix", "node_name", "log_level"}


def from_env(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from `JOBD_*` variables; `overrides` (from CLI flags) win over the environment."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for field in dataclasses.fields(Settings):
        raw = environ.get(f"JOBD_{field.name.upper()}")
        if raw is None or raw == "":
            continue
        name = f"JOBD_{field.name.upper()}"
        if field.name in _INTEGERS:
            values[field.name] = _parse_int(raw, name)
        elif field.name in _FLOATS:
            values[field.name] = _parse_float(raw, name)
        elif field.name == "queues":
            values[field.name] = parse_queues(raw)
        elif field.name == "data_dir":
            values[field.name] = Path(raw)
        elif field.name in _STRINGS:
            values[field.name] = raw
    values.update({key: value for key, value in overrides.items() if value is not None})
    return Settings(**values)  # type: ignore[arg-type]
