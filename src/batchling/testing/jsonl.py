"""Helpers to build OpenAI batch input files and read result files in tests and demos."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any


def batch_line(custom_id: str, url: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """One OpenAI batch input line: ``{"custom_id", "method": "POST", "url", "body"}``."""
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": dict(body)}


def to_jsonl(items: Iterable[Mapping[str, Any]]) -> bytes:
    """Serialize mappings as JSON Lines (one object per line, trailing newline)."""
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def parse_jsonl(data: bytes | str) -> list[dict[str, Any]]:
    """Parse JSON Lines, skipping blank lines."""
    text = data.decode() if isinstance(data, bytes) else data
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def by_custom_id(items: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Index result lines by their ``custom_id``."""
    return {str(item["custom_id"]): dict(item) for item in items}
