"""Deterministic OpenAI reply bodies.

The same functions answer real-time calls and batch lines, so for one request body a batch
result equals the real-time result except for ids and timestamps. Token counts are
whitespace-separated word counts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import struct
import zlib
from collections.abc import Callable
from typing import Any

from batchling.testing.schema_instance import minimal_instance

Json = dict[str, Any]
NewId = Callable[[str], str]
"""Makes a fresh id from a prefix such as ``"chatcmpl-"``."""

REALTIME_ENDPOINTS: tuple[str, ...] = (
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
)
DEFAULT_EMBEDDING_DIMENSIONS = 8
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"

MODERATION_CATEGORIES: tuple[str, ...] = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


class InvalidRequest(Exception):
    """The request body is unusable; answered as a 400 ``invalid_request_error``."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = 400


def build_reply(endpoint: str, body: Json, *, new_id: NewId, created: int) -> Json:
    """The success body for ``body`` sent to ``endpoint`` (``/v1/...``)."""
    builder = _BUILDERS.get(endpoint)
    if builder is None:
        raise InvalidRequest(f"Unsupported endpoint {endpoint}.", param="endpoint")
    return builder(body, new_id, created)


def reply_token_usage(reply: Json) -> tuple[int, int]:
    """(input tokens, output tokens) of a reply body, for batch ``usage`` totals."""
    usage = reply.get("usage")
    if not isinstance(usage, dict):
        return 0, 0
    prompt = usage.get("prompt_tokens", usage.get("input_tokens", 0))
    completion = usage.get("completion_tokens", usage.get("output_tokens", 0))
    return int(prompt or 0), int(completion or 0)


def count_words(text: str) -> int:
    return len(text.split())


# ---------------------------------------------------------------------------- chat completions


def chat_completion(body: Json, new_id: NewId, created: int) -> Json:
    model = _require_model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array.", param="messages")
    user_text = _last_user_text_from_messages(messages)
    prompt_tokens = sum(count_words(_message_text(m)) for m in messages if isinstance(m, dict))
    choice_count = _choice_count(body)
    tool_call = _forced_chat_tool_call(body, user_text)
    if tool_call is not None:
        message: Json = {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "annotations": [],
            "tool_calls": [tool_call],
        }
        finish_reason = "tool_calls"
        completion_words = count_words(tool_call["function"]["arguments"])
    else:
        content = _chat_content(body, user_text)
        content, finish_reason = truncate_words(content, _chat_token_limit(body))
        message = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
        completion_words = count_words(content)
    completion_tokens = completion_words * choice_count
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": index, "message": message, "logprobs": None, "finish_reason": finish_reason}
            for index in range(choice_count)
        ],
        "usage": _chat_usage(prompt_tokens, completion_tokens),
        "service_tier": "default",
        "system_fingerprint": "fp_fake_provider",
    }


def chat_completion_chunks(body: Json, new_id: NewId, created: int) -> list[Json]:
    """The ``chat.completion.chunk`` events a streaming call receives, in order."""
    whole = chat_completion(body, new_id, created)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(choices: list[Json], usage: Json | None = None) -> Json:
        event: Json = {
            "id": whole["id"],
            "object": "chat.completion.chunk",
            "created": created,
            "model": whole["model"],
            "system_fingerprint": whole["system_fingerprint"],
            "service_tier": whole["service_tier"],
            "choices": choices,
        }
        if include_usage:
            event["usage"] = usage
        return event

    def delta(index: int, value: Json, finish_reason: str | None = None) -> Json:
        return {"index": index, "delta": value, "logprobs": None, "finish_reason": finish_reason}

    events: list[Json] = []
    for choice in whole["choices"]:
        index = choice["index"]
        message = choice["message"]
        events.append(chunk([delta(index, {"role": "assistant", "content": "", "refusal": None})]))
        for piece in stream_pieces(message["content"] or ""):
            events.append(chunk([delta(index, {"content": piece})]))
        for position, call in enumerate(message.get("tool_calls") or []):
            call_delta = {"index": position, **call}
            events.append(chunk([delta(index, {"tool_calls": [call_delta]})]))
        events.append(chunk([delta(index, {}, choice["finish_reason"])]))
    if include_usage:
        events.append(chunk([], whole["usage"]))
    return events


def _chat_content(body: Json, user_text: str) -> str:
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema", {})
            return _dump_instance(schema, user_text)
        if kind == "json_object":
            return json.dumps({"reply": "echo: " + user_text})
    return "echo: " + user_text


def _forced_chat_tool_call(body: Json, user_text: str) -> Json | None:
    tools = [
        t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"
    ]
    function = _forced_function(
        tools, body.get("tool_choice"), lambda tool: tool.get("function") or {}, nested=True
    )
    if function is None:
        return None
    arguments = _dump_instance(function.get("parameters") or {"type": "object"}, user_text)
    name = str(function.get("name", ""))
    return {
        "id": "call_" + _digest(name + arguments)[:24],
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def _forced_function(
    tools: list[Json], tool_choice: Any, function_of: Callable[[Json], Json], *, nested: bool
) -> Json | None:
    """The function a ``tool_choice`` forces (``"required"`` or a named function), if any."""
    if not tools:
        return None
    if tool_choice == "required":
        return function_of(tools[0])
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        wanted = (
            (tool_choice.get("function") or {}).get("name") if nested else tool_choice.get("name")
        )
        for tool in tools:
            if function_of(tool).get("name") == wanted:
                return function_of(tool)
    return None


def _chat_token_limit(body: Json) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _chat_usage(prompt_tokens: int, completion_tokens: int) -> Json:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _last_user_text_from_messages(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _message_text(message)
    return ""


def _message_text(message: Json) -> str:
    return _content_text(message.get("content"))


def _content_text(content: Any) -> str:
    """Text of a string content or of a list of content parts (``text``/``input_text``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text")
        ]
        return " ".join(texts)
    return ""


# ---------------------------------------------------------------------------- responses


def response(body: Json, new_id: NewId, created: int) -> Json:
    model = _require_model(body)
    items = body.get("input")
    user_text = _last_user_text_from_input(items)
    instructions = body.get("instructions")
    prompt_tokens = _input_words(items)
    if isinstance(instructions, str):
        prompt_tokens += count_words(instructions)
    text_config = body.get("text") if isinstance(body.get("text"), dict) else None
    call = _forced_response_function_call(body, user_text, new_id)
    if call is not None:
        output: list[Json] = [call]
        output_tokens = count_words(call["arguments"])
        status, incomplete = "completed", None
    else:
        text = _response_text(text_config, user_text)
        text, finish = truncate_words(text, _int_or_none(body.get("max_output_tokens")))
        status = "incomplete" if finish == "length" else "completed"
        incomplete = {"reason": "max_output_tokens"} if finish == "length" else None
        output = [
            {
                "type": "message",
                "id": new_id("msg_"),
                "status": status,
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
                ],
            }
        ]
        output_tokens = count_words(text)
    return {
        "id": new_id("resp_"),
        "object": "response",
        "created_at": created,
        "status": status,
        "completed_at": created if status == "completed" else None,
        "background": bool(body.get("background", False)),
        "error": None,
        "incomplete_details": incomplete,
        "instructions": instructions,
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": model,
        "output": output,
        "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "service_tier": "default",
        "store": bool(body.get("store", True)),
        "temperature": body.get("temperature", 1.0),
        "text": text_config or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": list(body.get("tools") or []),
        "top_logprobs": body.get("top_logprobs", 0),
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + output_tokens,
        },
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def _response_text(text_config: Json | None, user_text: str) -> str:
    text_format = (text_config or {}).get("format")
    if isinstance(text_format, dict):
        if text_format.get("type") == "json_schema":
            return _dump_instance(text_format.get("schema") or {}, user_text)
        if text_format.get("type") == "json_object":
            return json.dumps({"reply": "echo: " + user_text})
    return "echo: " + user_text


def _forced_response_function_call(body: Json, user_text: str, new_id: NewId) -> Json | None:
    tools = [
        t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"
    ]
    function = _forced_function(tools, body.get("tool_choice"), lambda tool: tool, nested=False)
    if function is None:
        return None
    arguments = _dump_instance(function.get("parameters") or {"type": "object"}, user_text)
    name = str(function.get("name", ""))
    return {
        "type": "function_call",
        "id": new_id("fc_"),
        "call_id": "call_" + _digest(name + arguments)[:24],
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def _last_user_text_from_input(items: Any) -> str:
    if isinstance(items, str):
        return items
    if isinstance(items, list):
        for item in reversed(items):
            if isinstance(item, dict) and item.get("role") == "user":
                return _content_text(item.get("content"))
    return ""


def _input_words(items: Any) -> int:
    if isinstance(items, str):
        return count_words(items)
    if isinstance(items, list):
        return sum(
            count_words(_content_text(i.get("content"))) for i in items if isinstance(i, dict)
        )
    return 0


# ---------------------------------------------------------------------------- embeddings


def embeddings(body: Json, new_id: NewId, created: int) -> Json:
    model = _require_model(body)
    texts = _input_texts(body.get("input"), "input")
    dimensions = body.get("dimensions", DEFAULT_EMBEDDING_DIMENSIONS)
    if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
        raise InvalidRequest("'dimensions' must be a positive integer.", param="dimensions")
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(texts):
        vector = embedding_vector(text, dimensions)
        encoded: Any = _float32_base64(vector) if as_base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(count_words(text) for text in texts)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """Unit-length vector derived from a hash of ``text``; values are exact float32 numbers."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    raw = [rng.uniform(-1.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in raw))
    return list(struct.unpack(f"<{dimensions}f", packed))


def _float32_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


# ---------------------------------------------------------------------------- legacy completions


def completion(body: Json, new_id: NewId, created: int) -> Json:
    model = _require_model(body)
    if "prompt" not in body:
        raise InvalidRequest("Missing required parameter: 'prompt'.", param="prompt")
    prompts = _input_texts(body.get("prompt"), "prompt")
    choice_count = _choice_count(body)
    limit = _int_or_none(body.get("max_tokens"))
    choices: list[Json] = []
    completion_tokens = 0
    for prompt in prompts:
        text, finish_reason = truncate_words("echo: " + prompt, limit)
        completion_tokens += count_words(text) * choice_count
        for _ in range(choice_count):
            choices.append(
                {
                    "text": text,
                    "index": len(choices),
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            )
    prompt_tokens = sum(count_words(p) for p in prompts)
    return {
        "id": new_id("cmpl-"),
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
        "system_fingerprint": "fp_fake_provider",
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


# ---------------------------------------------------------------------------- moderations


def moderation(body: Json, new_id: NewId, created: int) -> Json:
    raw = body.get("input")
    if isinstance(raw, list) and raw and all(isinstance(item, dict) for item in raw):
        result_count = 1  # one multi-modal input
    else:
        result_count = len(_input_texts(raw, "input"))
    return {
        "id": new_id("modr-"),
        "model": str(body.get("model") or DEFAULT_MODERATION_MODEL),
        "results": [_unflagged_moderation_result() for _ in range(result_count)],
    }


def _unflagged_moderation_result() -> Json:
    return {
        "flagged": False,
        "categories": dict.fromkeys(MODERATION_CATEGORIES, False),
        "category_scores": dict.fromkeys(MODERATION_CATEGORIES, 0.0),
        "category_applied_input_types": {name: ["text"] for name in MODERATION_CATEGORIES},
    }


# ---------------------------------------------------------------------------- image generations

DEFAULT_IMAGE_MODEL = "dall-e-2"  # what the API uses when a request names none
IMAGE_URL_PREFIX = "https://images.fake-provider.invalid/"
_GPT_IMAGE_OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160}
"""Output tokens of one 1024x1024 image at each quality, as OpenAI's pricing page lists them."""


def image_generation(body: Json, new_id: NewId, created: int) -> Json:
    """An ``ImagesResponse``: each image a 1x1 PNG whose colour comes from the prompt.

    GPT Image models always answer base64 and report token usage; DALL·E models answer a URL
    unless ``response_format="b64_json"``, and DALL·E 3 rewrites the prompt.
    """
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise InvalidRequest("You must provide a prompt.", param="prompt")
    model = body.get("model") or DEFAULT_IMAGE_MODEL
    if not isinstance(model, str):
        raise InvalidRequest("'model' must be a string.", param="model")
    count = _int_or_none(body.get("n")) or 1
    if not 1 <= count <= 10 or (model == "dall-e-3" and count != 1):
        raise InvalidRequest(
            f"Invalid 'n': {count} images cannot be generated with {model}.", param="n"
        )
    size = body.get("size") if body.get("size") not in (None, "auto") else "1024x1024"
    if not model.startswith("gpt-image"):
        return _dall_e_images(body, model, prompt, count, created, new_id)
    if body.get("response_format") is not None:
        raise InvalidRequest(
            f"Unknown parameter: 'response_format' is not supported with {model}.",
            param="response_format",
        )
    quality = body.get("quality") if body.get("quality") not in (None, "auto") else "medium"
    input_tokens = count_words(prompt)
    output_tokens = count * _GPT_IMAGE_OUTPUT_TOKENS.get(str(quality), 1056)
    image = _png_base64(prompt)
    return {
        "created": created,
        "background": "transparent" if body.get("background") == "transparent" else "opaque",
        "data": [{"b64_json": image} for _ in range(count)],
        "output_format": body.get("output_format") or "png",
        "quality": quality,
        "size": size,
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"text_tokens": input_tokens, "image_tokens": 0},
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
    }


def _dall_e_images(
    body: Json, model: str, prompt: str, count: int, created: int, new_id: NewId
) -> Json:
    as_base64 = body.get("response_format") == "b64_json"
    images: list[Json] = []
    for _ in range(count):
        image: Json = (
            {"b64_json": _png_base64(prompt)}
            if as_base64
            else {"url": f"{IMAGE_URL_PREFIX}{new_id('img-')}.png"}
        )
        if model == "dall-e-3":
            image["revised_prompt"] = f"A photograph of {prompt}"
        images.append(image)
    return {"created": created, "data": images}


def _png_base64(prompt: str) -> str:
    """A valid one-pixel PNG whose colour is the first three bytes of the prompt's SHA-256."""
    red, green, blue = hashlib.sha256(prompt.encode()).digest()[:3]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(bytes((0, red, green, blue)))  # filter byte, then the pixel
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
    return base64.b64encode(png + chunk(b"IEND", b"")).decode()


# ---------------------------------------------------------------------------- shared helpers

_BUILDERS: dict[str, Callable[[Json, NewId, int], Json]] = {
    "/v1/chat/completions": chat_completion,
    "/v1/responses": response,
    "/v1/embeddings": embeddings,
    "/v1/completions": completion,
    "/v1/moderations": moderation,
    "/v1/images/generations": image_generation,
}


def _require_model(body: Json) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("You must provide a model parameter.", param="model")
    return model


def _input_texts(value: Any, param: str) -> list[str]:
    """A string, list of strings, token list, or list of token lists as a list of texts."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(item, int) for item in value):
            return [" ".join(str(item) for item in value)]
        if all(isinstance(item, (str, list)) for item in value):
            return [item if isinstance(item, str) else " ".join(map(str, item)) for item in value]
    raise InvalidRequest(
        f"'{param}' must be a string or a non-empty array of strings.", param=param
    )


def _choice_count(body: Json) -> int:
    n = body.get("n", 1)
    if n is None:
        return 1
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InvalidRequest("'n' must be a positive integer.", param="n")
    return n


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def truncate_words(text: str, limit: int | None) -> tuple[str, str]:
    """Cut ``text`` to ``limit`` words; returns (text, finish_reason)."""
    if limit is None:
        return text, "stop"
    words = text.split()
    if len(words) <= limit:
        return text, "stop"
    return " ".join(words[:limit]), "length"


def stream_pieces(content: str) -> list[str]:
    """Split content into word-sized deltas that concatenate back to ``content`` exactly."""
    pieces: list[str] = []
    current = ""
    for char in content:
        current += char
        if char == " ":
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return pieces


def _dump_instance(schema: Any, text: str) -> str:
    return dump_instance(schema, text, "response_format")


def dump_instance(schema: Any, text: str, param: str) -> str:
    """JSON text of a minimal instance of ``schema`` (InvalidRequest naming ``param`` if bad)."""
    try:
        return json.dumps(minimal_instance(schema, text))
    except ValueError as exc:
        raise InvalidRequest(f"Invalid schema: {exc}", param=param) from exc


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
