"""What the Stainless-generated SDKs (openai, anthropic, and OpenAI-compatible ones) share.

Their clients route every HTTP call through `AsyncAPIClient.request(cast_to, options, ...)`.
batchling intercepts there, reproduces the steps the SDK takes before sending (so the batch line
carries the exact body), and answers a batched call by feeding a synthetic HTTP response to the
SDK's own `_process_response` or `_make_status_error_from_response`, so callers get the very
objects and exceptions the real-time call produces.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import inspect
import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

# Headers that say nothing about where or as whom a request is sent. Every other header the SDK
# would send (auth, organization, project, versions, betas, user-set headers) is identity.
_IRRELEVANT_HEADERS = frozenset({
    "accept", "accept-encoding", "connection", "content-length", "content-type", "host",
    "idempotency-key", "user-agent",
})  # fmt: skip
_SDK_HEADER_PREFIX = "x-stainless-"
RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"


@dataclasses.dataclass(frozen=True, slots=True)
class PreparedCall:
    """One intercepted call, prepared exactly as the SDK would have sent it."""

    cast_to: Any
    options: Any
    """The SDK's prepared `FinalRequestOptions`."""
    http_request: Any
    """The request the SDK built (`httpx2` or `httpx`). The batch answer becomes its response,
    so the SDK sees the very headers (e.g. the raw-response marker) it would have sent."""
    raw_body: bytes
    """The exact JSON body bytes the SDK would have sent."""
    body: Mapping[str, Any]
    call_headers: Mapping[str, str]
    """Headers the caller set on this call (`extra_headers`, SDK kwargs that become headers):
    they apply to the whole batch job, so they are part of its identity and sent with it."""
    client_key: str


def request_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """`(cast_to, options)` from a call of `AsyncAPIClient.request(cast_to, options, ...)`."""
    values = list(args[:2])
    for name in ("cast_to", "options")[len(values) :]:
        values.append(kwargs[name])
    return values[0], values[1]


def path_of(url: str) -> str:
    """The SDK-relative path of a request URL, or `""` for an absolute URL."""
    path = url.split("?", 1)[0]
    if "://" in path:
        return ""
    return "/" + path.lstrip("/")


def is_streaming(options: Any, kwargs: Mapping[str, Any]) -> bool:
    """Whether the call asks for a streamed response (`stream=True`)."""
    json_data = options.json_data if isinstance(options.json_data, Mapping) else {}
    return bool(kwargs.get("stream") or json_data.get("stream"))


def wants_streaming_response(options: Any) -> bool:
    """Whether the call came through `with_streaming_response`."""
    headers = options.headers if isinstance(options.headers, Mapping) else {}
    return str(headers.get(RAW_RESPONSE_HEADER, "")).lower() == "stream"


def has_non_json_body(options: Any) -> bool:
    """Whether the request sends files or raw bytes instead of a JSON body."""
    # `content` (raw bytes bodies) appeared in openai 2.x's later releases.
    return options.files is not None or getattr(options, "content", None) is not None


def digest(*parts: object) -> str:
    """A stable SHA-256 hex digest of JSON-able parts."""
    data = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode()).hexdigest()


def is_sync_client(client: Any) -> bool:
    """Whether `client` is a sync (blocking) Stainless client."""
    return any(cls.__name__ == "SyncAPIClient" for cls in type(client).__mro__)


async def call(client: Any, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call an SDK method of `client` from batchling's event loop.

    A sync client's method blocks, so it runs in a worker thread (which inherits the caller's
    context, so batchling's own calls stay unbatched).
    """
    if is_sync_client(client):
        return await asyncio.to_thread(method, *args, **kwargs)
    return await method(*args, **kwargs)


async def _settle(value: Any) -> Any:
    """`value`, awaited if the SDK returned an awaitable (async clients do, sync ones don't)."""
    return await value if inspect.isawaitable(value) else value


async def prepare(client: Any, cast_to: Any, options: Any) -> PreparedCall:
    """Take the steps the SDK's `request()` takes before sending, without sending.

    Works for async and sync clients alike. The caller's options object is left untouched.
    """
    copy_and_prepare = getattr(client, "_copy_and_prepare", None)
    if copy_and_prepare is not None:
        # anthropic 2.x merges `extra_body` and strips its `Omit` sentinels here.
        options = await _settle(copy_and_prepare(options))
    else:
        options = options.model_copy()
    cast_to = client._maybe_override_cast_to(cast_to, options)
    options = await _settle(client._prepare_options(options))
    http_request = client._build_request(options)
    raw_body: bytes = http_request.content or b"{}"
    identity = sorted(
        (key.lower(), value)
        for key, value in http_request.headers.items()
        if key.lower() not in _IRRELEVANT_HEADERS and not key.lower().startswith(_SDK_HEADER_PREFIX)
    )
    headers = options.headers if isinstance(options.headers, Mapping) else {}
    call_headers = {
        key: value
        for key, value in headers.items()
        if isinstance(value, str)
        and key.lower() not in _IRRELEVANT_HEADERS
        and not key.lower().startswith(_SDK_HEADER_PREFIX)
    }
    return PreparedCall(
        cast_to=cast_to,
        options=options,
        http_request=http_request,
        raw_body=raw_body,
        body=json.loads(raw_body),
        call_headers=call_headers,
        client_key=digest(str(client.base_url), http_request.url.query, identity),
    )


def http_module(http_request: Any) -> Any:
    """`httpx2` or `httpx`: whichever the SDK built its request with (openai 3.x takes both)."""
    return sys.modules[type(http_request).__module__.split(".", 1)[0]]


def http_module_of_client(client: Any) -> Any:
    """`httpx2` or `httpx`: whichever the SDK client's own HTTP client comes from."""
    for cls in type(client._client).__mro__:
        top = cls.__module__.split(".", 1)[0]
        if top in ("httpx", "httpx2"):
            return sys.modules[top]
    raise TypeError(f"{type(client._client)!r} is neither an httpx2 nor an httpx client")


async def respond(
    client: Any,
    call: PreparedCall,
    status_code: int,
    body: Any,
    headers: Mapping[str, str],
) -> Any:
    """What the SDK returns (or raises) for this call had the provider answered `body`."""
    http = http_module(call.http_request)
    response = http.Response(status_code, json=body, request=call.http_request, headers=headers)
    if status_code >= 400:
        raise client._make_status_error_from_response(response)
    return await _settle(
        client._process_response(
            cast_to=call.cast_to,
            options=call.options,
            response=response,
            stream=False,
            stream_cls=None,
        )
    )


def is_transient_status(status_code: int) -> bool:
    """Whether an HTTP status is worth retrying (as the SDKs themselves judge it)."""
    return status_code in (408, 409, 429) or status_code >= 500
