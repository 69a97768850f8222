"""Logging set-up and the one helper that formats structured fields for log lines."""

from __future__ import annotations

import logging
import sys


def fields(**values: object) -> str:
    """Format `key=value` pairs for a log line, skipping None; values with spaces are quoted."""
    parts = []
    for key, value in values.items():
        if value is None:
            continue
        text = str(value)
        if not text or any(char.isspace() for char in text) or '"' in text:
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def configure(level: str) -> None:
    """Send jobd's logs to stderr with timestamps, once per process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Each request would otherwise log a line; jobd logs what matters itself.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
