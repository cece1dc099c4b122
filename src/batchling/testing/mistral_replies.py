"""Deterministic Mistral replies, for real-time calls and batch lines alike.

The chat reply text is ``"echo: "`` plus the text of the last user message; a
``response_format`` of type ``json_schema`` gets a minimal instance of its schema (so the SDK's
``chat.parse`` works), ``json_object`` a small JSON object; ``tool_choice`` ``"any"`` /
``"required"`` or a named function gets a tool call; ``max_tokens`` cuts the reply to that many
words (``finish_reason`` ``"length"``). FIM completions echo the prompt; embeddings are
deterministic unit vectors of ``output_dimension`` floats (8 by default; ``output_dtype`` and
``encoding_format`` are ignored: floats always). Token counts are word counts.
"""

from __future__ import annotations

from typing import Any

from batchling.testing.replies import (
    DEFAULT_EMBEDDING_DIMENSIONS,
    InvalidRequest,
    NewId,
    chat_completion,
    count_words,
    embedding_vector,
    stream_pieces,
    truncate_words,
)

Json = dict[str, Any]

ENDPOINTS: tuple[str, ...] = ("/v1/chat/completions", "/v1/embeddings", "/v1/fim/completions")
"""The endpoints the fake Mistral answers, in real time and in batch jobs."""


def build_reply(endpoint: str, body: Json, new_id: NewId, created: int) -> Json:
    """The success body Mistral's ``endpoint`` gives ``body`` (InvalidRequest if unusable)."""
    if endpoint == "/v1/chat/completions":
        return chat_reply(body, new_id, created)
    if endpoint == "/v1/embeddings":
        return embeddings_reply(body, new_id)
    if endpoint == "/v1/fim/completions":
        return fim_reply(body, new_id, created)
    raise InvalidRequest(f"The fake Mistral server does not serve {endpoint}.", param="endpoint")


def chat_reply(body: Json, new_id: NewId, created: int) -> Json:
    """A ``ChatCompletionResponse`` body."""
    if body.get("stream") is True:
        raise InvalidRequest("Streaming is not supported here.", param="stream")
    # Mistral's "any" forces a tool call, as OpenAI's "required" does.
    request = {**body, "tool_choice": "required"} if body.get("tool_choice") == "any" else body
    whole = chat_completion(request, new_id, created)
    choices = []
    for choice in whole["choices"]:
        message = choice["message"]
        tool_calls = [
            {"id": call["id"][-9:], "type": "function", "function": call["function"], "index": i}
            for i, call in enumerate(message.get("tool_calls") or [])
        ]
        choices.append(
            {
                "index": choice["index"],
                "message": {
                    "role": "assistant",
                    "content": message["content"] or "",
                    "tool_calls": tool_calls or None,
                    "prefix": False,
                },
                "finish_reason": choice["finish_reason"],
            }
        )
    return {
        "id": whole["id"],
        "object": "chat.completion",
        "model": whole["model"],
        "created": created,
        "usage": _usage(whole["usage"]["prompt_tokens"], whole["usage"]["completion_tokens"]),
        "choices": choices,
    }


def chat_chunks(body: Json, new_id: NewId, created: int) -> list[Json]:
    """The ``CompletionChunk`` events a streamed chat call receives, in order."""
    whole = chat_reply({**body, "stream": False}, new_id, created)

    def chunk(choices: list[Json], usage: Json | None = None) -> Json:
        event: Json = {
            "id": whole["id"],
            "object": "chat.completion.chunk",
            "created": created,
            "model": whole["model"],
            "choices": choices,
        }
        if usage is not None:
            event["usage"] = usage
        return event

    events: list[Json] = []
    for choice in whole["choices"]:
        index = choice["index"]
        message = choice["message"]
        start = {"role": "assistant", "content": ""}
        events.append(chunk([{"index": index, "delta": start, "finish_reason": None}]))
        for piece in stream_pieces(message["content"]):
            events.append(
                chunk([{"index": index, "delta": {"content": piece}, "finish_reason": None}])
            )
        if message["tool_calls"]:
            calls = {"tool_calls": message["tool_calls"]}
            events.append(chunk([{"index": index, "delta": calls, "finish_reason": None}]))
        finish = {
            "index": index,
            "delta": {"content": ""},
            "finish_reason": choice["finish_reason"],
        }
        events.append(chunk([finish]))
    events[-1]["usage"] = whole["usage"]
    return events


def embeddings_reply(body: Json, new_id: NewId) -> Json:
    """An ``EmbeddingResponse`` body."""
    model = _model(body)
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidRequest("'input' must be a string or a non-empty list of strings.")
    dimensions = body.get("output_dimension") or DEFAULT_EMBEDDING_DIMENSIONS
    if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
        raise InvalidRequest("'output_dimension' must be a positive integer.")
    tokens = sum(count_words(text) for text in texts)
    return {
        "id": new_id(""),
        "object": "list",
        "model": model,
        "usage": _usage(tokens, 0),
        "data": [
            {"object": "embedding", "embedding": embedding_vector(text, dimensions), "index": i}
            for i, text in enumerate(texts)
        ],
    }


def fim_reply(body: Json, new_id: NewId, created: int) -> Json:
    """A ``FIMCompletionResponse`` body."""
    model = _model(body)
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidRequest("'prompt' must be a string.")
    limit = body.get("max_tokens")
    text, finish_reason = truncate_words(
        "echo: " + prompt, limit if isinstance(limit, int) and not isinstance(limit, bool) else None
    )
    return {
        "id": new_id(""),
        "object": "chat.completion",
        "model": model,
        "created": created,
        "usage": _usage(count_words(prompt), count_words(text)),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": None},
                "finish_reason": finish_reason,
            }
        ],
    }


def _model(body: Json) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required.", param="model")
    return model


def _usage(prompt_tokens: int, completion_tokens: int) -> Json:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
