"""Deterministic Gemini (Developer API) replies, for real-time calls and batch results alike.

Bodies are camelCase as on the wire. The reply text is ``"echo: "`` plus the text of the last
user content; a JSON ``responseMimeType`` with ``responseSchema`` (OpenAPI-style, upper-case
types) or ``responseJsonSchema`` gets a minimal instance of the schema, so the SDK's
``.parsed`` works; ``toolConfig.functionCallingConfig.mode == "ANY"`` gets a ``functionCall``
part. Token counts are whitespace-separated word counts.
"""

from __future__ import annotations

import json
from typing import Any

from batchling.testing.replies import (
    DEFAULT_EMBEDDING_DIMENSIONS,
    InvalidRequest,
    NewId,
    count_words,
    dump_instance,
    embedding_vector,
    stream_pieces,
    truncate_words,
)

Json = dict[str, Any]


def generate_content(request: Json, model: str, new_id: NewId) -> Json:
    """The ``GenerateContentResponse`` for a ``generateContent`` body sent to ``model``."""
    contents = request.get("contents")
    if not isinstance(contents, list) or not contents:
        raise InvalidRequest("* GenerateContentRequest.contents: contents is not specified")
    user_text = last_user_text(contents)
    config = request.get("generationConfig")
    config = config if isinstance(config, dict) else {}
    candidate_count = _positive_int(config.get("candidateCount"), "candidateCount") or 1
    call = _forced_function_call(request, user_text)
    if call is not None:
        part: Json = {"functionCall": call}
        finish_reason = "STOP"
        output_words = count_words(json.dumps(call["args"]))
    else:
        text, finish_reason = _reply_text(config, user_text)
        part = {"text": text}
        output_words = count_words(text)
    prompt_words = _prompt_tokens(request)
    candidates_words = output_words * candidate_count
    return {
        "candidates": [
            {
                "content": {"parts": [dict(part)], "role": "model"},
                "finishReason": finish_reason,
                "index": index,
            }
            for index in range(candidate_count)
        ],
        "usageMetadata": {
            "promptTokenCount": prompt_words,
            "candidatesTokenCount": candidates_words,
            "totalTokenCount": prompt_words + candidates_words,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_words}],
        },
        "modelVersion": model,
        "responseId": new_id("resp"),
    }


def generate_content_chunks(response: Json) -> list[Json]:
    """The chunks ``streamGenerateContent`` sends for ``response``; their texts add up to it."""
    candidates = response["candidates"]
    parts = candidates[0]["content"]["parts"] if len(candidates) == 1 else []
    if len(parts) != 1 or "text" not in parts[0]:
        return [response]  # function calls and several candidates come in one chunk
    pieces = stream_pieces(parts[0]["text"]) or [""]
    usage = response["usageMetadata"]
    chunks: list[Json] = []
    for position, piece in enumerate(pieces):
        last = position == len(pieces) - 1
        candidate: Json = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
        if last:
            candidate["finishReason"] = candidates[0]["finishReason"]
        chunks.append(
            {
                "candidates": [candidate],
                "usageMetadata": usage
                if last
                else {
                    "promptTokenCount": usage["promptTokenCount"],
                    "totalTokenCount": usage["promptTokenCount"],
                },
                "modelVersion": response["modelVersion"],
                "responseId": response["responseId"],
            }
        )
    return chunks


def count_tokens(request: Json) -> Json:
    """The ``countTokens`` answer for a body with ``contents`` or ``generateContentRequest``."""
    inner = request.get("generateContentRequest")
    total = _prompt_tokens(inner if isinstance(inner, dict) else request)
    return {"totalTokens": total}


def embed_content(request: Json) -> Json:
    """``{"embedding": {"values": [...]}}`` for one ``embedContent`` request."""
    content = request.get("content")
    if not isinstance(content, dict):
        raise InvalidRequest("* EmbedContentRequest.content: content is not specified")
    dimensions = (
        _positive_int(request.get("outputDimensionality"), "outputDimensionality")
        or DEFAULT_EMBEDDING_DIMENSIONS
    )
    return {"embedding": {"values": embedding_vector(content_text(content), dimensions)}}


def batch_embed_contents(body: Json) -> Json:
    """``{"embeddings": [...]}`` for a real-time ``batchEmbedContents`` body."""
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise InvalidRequest("* BatchEmbedContentsRequest.requests: requests is not specified")
    embeddings = []
    for item in requests:
        if not isinstance(item, dict):
            raise InvalidRequest("* BatchEmbedContentsRequest.requests: must be objects")
        embeddings.append(embed_content(item)["embedding"])
    return {"embeddings": embeddings}


def last_user_text(contents: list[Any]) -> str:
    for content in reversed(contents):
        if isinstance(content, dict) and content.get("role", "user") == "user":
            return content_text(content)
    return ""


def content_text(content: Any) -> str:
    """The text parts of a ``Content`` joined by spaces."""
    if not isinstance(content, dict):
        return ""
    parts = content.get("parts")
    if not isinstance(parts, list):
        return ""
    return " ".join(
        str(part["text"]) for part in parts if isinstance(part, dict) and "text" in part
    )


def _prompt_tokens(request: Json) -> int:
    total = count_words(content_text(request.get("systemInstruction")))
    for content in request.get("contents") or []:
        total += count_words(content_text(content))
    return total


def _reply_text(config: Json, user_text: str) -> tuple[str, str]:
    """(text, finishReason) of a plain or structured reply."""
    mime_type = config.get("responseMimeType")
    schema = config.get("responseJsonSchema", config.get("responseSchema"))
    if mime_type == "application/json":
        if schema is None:
            return json.dumps({"reply": "echo: " + user_text}), "STOP"
        return dump_instance(schema, user_text, "generationConfig.responseSchema"), "STOP"
    if mime_type == "text/x.enum" and isinstance(schema, dict) and schema.get("enum"):
        return str(schema["enum"][0]), "STOP"
    limit = _positive_int(config.get("maxOutputTokens"), "maxOutputTokens")
    text, finish = truncate_words("echo: " + user_text, limit)
    return text, "MAX_TOKENS" if finish == "length" else "STOP"


def _forced_function_call(request: Json, user_text: str) -> Json | None:
    """A ``functionCall`` when function calling mode is ``ANY`` and functions are declared."""
    tool_config = request.get("toolConfig")
    calling = tool_config.get("functionCallingConfig") if isinstance(tool_config, dict) else None
    if not isinstance(calling, dict) or str(calling.get("mode", "")).upper() != "ANY":
        return None
    declarations = [
        declaration
        for tool in request.get("tools") or []
        if isinstance(tool, dict)
        for declaration in tool.get("functionDeclarations") or []
        if isinstance(declaration, dict) and isinstance(declaration.get("name"), str)
    ]
    allowed = calling.get("allowedFunctionNames")
    if isinstance(allowed, list) and allowed:
        declarations = [d for d in declarations if d["name"] in allowed]
    if not declarations:
        return None
    declaration = declarations[0]
    # google-genai 3.6 sends ``parameters_json_schema`` in snake_case (unlike other fields).
    schema = next(
        (
            declaration[key]
            for key in ("parametersJsonSchema", "parameters_json_schema", "parameters")
            if isinstance(declaration.get(key), dict)
        ),
        {"type": "object"},
    )
    args = json.loads(dump_instance(schema, user_text, "tools.functionDeclarations.parameters"))
    return {"name": declaration["name"], "args": args}


def _positive_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidRequest(f"* GenerateContentRequest.{name}: must be a positive integer")
    return value
