"""Plain request/response values passed between the HTTP plumbing and protocol handlers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    path_params: dict[str, str] = field(default_factory=dict)

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def bearer_token(self) -> str | None:
        """The token of an ``Authorization: Bearer <token>`` header, or None if missing/empty."""
        value = self.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        return token


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass(frozen=True)
class DropConnection:
    """Returned instead of a Response: close the connection without answering."""


def json_object(raw: bytes) -> dict[str, Any] | None:
    """A request body as a JSON object, or None if it is not JSON or not an object."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def dump_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(status: int, value: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status=status, body=dump_json(value), headers=dict(headers or {}))
