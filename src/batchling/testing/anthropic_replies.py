"""Deterministic Anthropic Messages replies, for real-time calls and batch results alike.

The reply text is ``"echo: "`` plus the text of the last user message; a JSON-schema
``output_config.format`` (what ``messages.parse(output_format=Model)`` sends) gets a minimal
instance of the schema as its text; a ``tool_choice`` that forces a tool gets a ``tool_use``
block whose ``input`` is a minimal instance of the tool's ``input_schema``. Token counts are
whitespace-separated word counts.
"""

from __future__ import annotations

import json
from typing import Any

from batchling.testing.replies import (
    InvalidRequest,
    NewId,
    count_words,
    dump_instance,
    stream_pieces,
    truncate_words,
)

Json = dict[str, Any]

SseEvent = tuple[str, Json]
"""(event name, data) of one server-sent event."""


def validate_params(params: Json, where: str = "") -> None:
    """Check what the Messages API rejects up front (raises InvalidRequest naming the field)."""
    model = params.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest(f"{where}model: Field required", param=f"{where}model")
    max_tokens = params.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise InvalidRequest(f"{where}max_tokens: Field required", param=f"{where}max_tokens")
    if max_tokens < 1:
        raise InvalidRequest(
            f"{where}max_tokens: Input should be greater than or equal to 1",
            param=f"{where}max_tokens",
        )
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(
            f"{where}messages: at least one message is required", param=f"{where}messages"
        )
    if not all(isinstance(message, dict) for message in messages):
        raise InvalidRequest(
            f"{where}messages: each message must be an object", param=f"{where}messages"
        )


def build_message(params: Json, *, new_id: NewId, service_tier: str = "standard") -> Json:
    """The ``Message`` answering ``params`` (a ``/v1/messages`` body or a batch ``params``)."""
    validate_params(params)
    user_text = last_user_text(params["messages"])
    input_tokens = prompt_tokens(params)
    tool_use = _forced_tool_use(params, user_text, new_id)
    if tool_use is not None:
        content: list[Json] = [tool_use]
        stop_reason = "tool_use"
        output_tokens = count_words(json.dumps(tool_use["input"]))
    else:
        schema = _output_schema(params)
        if schema is not None:
            text = dump_instance(schema, user_text, "output_config.format")
            stop_reason = "end_turn"
        else:
            text, finish = truncate_words("echo: " + user_text, int(params["max_tokens"]))
            stop_reason = "max_tokens" if finish == "length" else "end_turn"
        content = [{"type": "text", "text": text}]
        output_tokens = count_words(text)
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": params["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": service_tier,
        },
    }


def count_tokens(params: Json) -> Json:
    """The ``/v1/messages/count_tokens`` answer."""
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: at least one message is required", param="messages")
    return {"input_tokens": prompt_tokens(params)}


def message_stream_events(message: Json) -> list[SseEvent]:
    """The server-sent events a ``stream: true`` call receives for ``message``, in order."""
    usage = message["usage"]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    events: list[SseEvent] = [
        ("message_start", {"type": "message_start", "message": start}),
    ]
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            opening: Json = {**block, "input": {}}
            deltas = [
                {"type": "input_json_delta", "partial_json": piece}
                for piece in stream_pieces(json.dumps(block["input"]))
            ]
        else:
            opening = {"type": "text", "text": ""}
            deltas = [
                {"type": "text_delta", "text": piece} for piece in stream_pieces(block["text"])
            ]
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            )
        )
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        for delta in deltas:
            events.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": message["stop_reason"],
                    "stop_sequence": message["stop_sequence"],
                },
                "usage": {
                    "input_tokens": usage["input_tokens"],
                    "output_tokens": usage["output_tokens"],
                },
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def content_text(content: Any) -> str:
    """A string content, or the text blocks of a block list joined by spaces."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(block.get("text", ""))
            for block in content
            if isinstance(block, dict) and block.get("type") == "text"
        )
    return ""


def prompt_tokens(params: Json) -> int:
    total = count_words(content_text(params.get("system")))
    for message in params.get("messages") or []:
        if isinstance(message, dict):
            total += count_words(content_text(message.get("content")))
    return total


def _output_schema(params: Json) -> Any | None:
    """The schema the reply must follow: ``output_config.format`` or beta ``output_format``."""
    config = params.get("output_config")
    candidates = [
        config.get("format") if isinstance(config, dict) else None,
        params.get("output_format"),
    ]
    for output_format in candidates:
        if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
            return output_format.get("schema") or {}
    return None


def _forced_tool_use(params: Json, user_text: str, new_id: NewId) -> Json | None:
    """A ``tool_use`` block when ``tool_choice`` forces a tool (``tool`` by name, or ``any``)."""
    tools = [
        tool
        for tool in params.get("tools") or []
        if isinstance(tool, dict) and isinstance(tool.get("name"), str)
    ]
    choice = params.get("tool_choice")
    if not tools or not isinstance(choice, dict):
        return None
    if choice.get("type") == "any":
        tool = tools[0]
    elif choice.get("type") == "tool":
        named = [t for t in tools if t["name"] == choice.get("name")]
        if not named:
            raise InvalidRequest(
                f"tool_choice: tool {choice.get('name')!r} is not in 'tools'", param="tool_choice"
            )
        tool = named[0]
    else:
        return None
    schema = tool.get("input_schema") or {"type": "object"}
    tool_input = json.loads(dump_instance(schema, user_text, "tools.input_schema"))
    return {"type": "tool_use", "id": new_id("toolu_"), "name": tool["name"], "input": tool_input}
