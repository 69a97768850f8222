"""A minimal Server-Sent Events reader for tests."""

from __future__ import annotations

import dataclasses
import json

import httpx


@dataclasses.dataclass
class Message:
    event: str
    id: str | None
    data: object


async def read_messages(response: httpx.Response):
    """Yield each message of an open SSE response; comment lines (keep-alives) are skipped."""
    event, event_id, data = "message", None, []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield Message(event, event_id, json.loads("\n".join(data)))
            event, event_id, data = "message", None, []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "id":
                event_id = value
            elif name == "data":
                data.append(value)
