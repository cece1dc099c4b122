"""What the Stainless-generated SDKs (openai, anthropic, and OpenAI-compatible ones) share.

Their clients route every HTTP call through `AsyncAPIClient.request(cast_to, options, ...)`.
batchling intercepts there, takes the steps the SDK takes before sending (so the batch line
carries the exact body), and answers a batched call with the SDK's own objects and exceptions.

Per call, batchling does only what the answer needs:

- the body is the SDK's prepared JSON data, encoded once in a canonical form (sorted keys,
  compact) that also gives the request its digest;
- the client identity (base URL, query, and every header that says where or as whom the request
  goes) is worked out with the SDK's own `_build_request` once per client and header set, then
  reused;
- a successful line whose type is a plain SDK model is validated straight into that model
  (`cast_to.model_validate`) and given its request id, as the SDK's response processing does.
  Everything else (raw responses, `parse()` helpers, strict clients, error lines, bodies that do
  not validate) goes through the SDK's own `_process_response` or
  `_make_status_error_from_response`, on an HTTP request the SDK builds when it is needed.

Set `VERIFY_FAST_PATHS` (the tests do) to check every shortcut against the SDK's own result.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import inspect
import json
import os
import sys
import typing
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pydantic

from batchling.job_clients import JobClients

if TYPE_CHECKING:
    from batchling.provider import BatchRequest, LineResult

# Headers that say nothing about where or as whom a request is sent. Every other header the SDK
# would send (auth, organization, project, versions, betas, user-set headers) is identity.
_IRRELEVANT_HEADERS = frozenset({
    "accept", "accept-encoding", "connection", "content-length", "content-type", "host",
    "idempotency-key", "user-agent",
})  # fmt: skip
_SDK_HEADER_PREFIX = "x-stainless-"
RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"

VERIFY_FAST_PATHS = os.environ.get("BATCHLING_VERIFY_FAST_PATHS", "") == "1"
"""Check every shortcut (direct model validation, cached identities, keyword-built bodies)
against the SDK's own result, raising `AssertionError` on a difference. For tests."""


@dataclasses.dataclass(frozen=True, slots=True)
class PreparedCall:
    """One intercepted call, prepared as the SDK would have sent it."""

    cast_to: Any
    options: Any
    """The SDK's prepared `FinalRequestOptions`; `None` for a call built from a create method's
    keyword arguments (see `batchling.stainless_direct`), whose options are made on demand."""
    path: str
    """The SDK-relative path the request goes to (`/chat/completions`, `/v1/messages`...)."""
    raw_body: bytes
    """The JSON body, canonically encoded (sorted keys, compact, UTF-8)."""
    body: Mapping[str, Any]
    call_headers: Mapping[str, Any]
    """Headers the caller set on this call (`extra_headers`, SDK kwargs that become headers):
    they apply to the whole batch job, so they are part of its identity and sent with it. A
    value may be the SDK's `Omit` marker, which removes a header the client would send."""
    client_key: str
    validate_directly: bool
    """Whether a successful answer may be validated straight into `cast_to`."""


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


def request_digest(
    provider: str,
    endpoint: str,
    model: str,
    base_url: str,
    raw_body: bytes,
    call_headers: Mapping[str, Any] | None = None,
) -> str:
    """The digest a request is known by: where it goes, its canonical body, and the headers
    the call set itself (`betas=`, `extra_headers`: they can change the answer), hashed."""
    digest = _digest_head(provider, endpoint, model, base_url).copy()
    digest.update(raw_body)
    # Only headers the call sends: the SDKs also pass `Omit` markers for headers they leave
    # out (anthropic's `messages.create` always does). Without any, the digest stays what it
    # was before headers counted, so journals written then still resume.
    sent = sorted(
        (key, value) for key, value in (call_headers or {}).items() if isinstance(value, str)
    )
    if sent:
        digest.update(b"\x00headers" + json.dumps(sent).encode())
    return str(digest.hexdigest())


@functools.lru_cache(maxsize=1024)
def _digest_head(provider: str, endpoint: str, model: str, base_url: str) -> Any:
    head = json.dumps([provider, endpoint, model, base_url], separators=(",", ":"))
    return hashlib.sha256(head.encode() + b"\n")


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


# -- bodies ------------------------------------------------------------------------------------


class _NotPlainJSON(Exception):
    """The data holds a value the canonical encoder leaves to the SDK's own serializer."""


def _refuse(value: object) -> Any:
    raise _NotPlainJSON(type(value).__name__)


_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_refuse
)


def encode_json(data: Any) -> bytes | None:
    """`data` canonically encoded, or `None` if it holds anything but JSON values (dates,
    models, NaN...), which only the SDK's own serializer may decide about."""
    try:
        return _ENCODER.encode(data).encode()
    except (_NotPlainJSON, ValueError):
        return None


def _sdk_module(client_type: type, name: str) -> Any:
    """The SDK module `name` (e.g. `_models`) of the package a client type comes from."""
    for cls in client_type.__mro__:
        if cls.__name__ in ("AsyncAPIClient", "SyncAPIClient"):
            return sys.modules[cls.__module__.rsplit(".", 1)[0] + "." + name]
    raise TypeError(f"{client_type!r} is not a Stainless SDK client")


# -- client identity ---------------------------------------------------------------------------

_BASE_URL_TEXTS: dict[int, tuple[Any, str]] = {}
"""`str(url)` by the id of the URL object (kept alive here, so the id stays its own)."""


def base_url_text(client: Any) -> str:
    """`str(client.base_url)`, worked out once per URL object (the SDKs replace the object when
    the base URL changes): this runs for every batched call."""
    url = client.base_url
    known = _BASE_URL_TEXTS.get(id(url))
    if known is not None and known[0] is url:
        return known[1]
    text = str(url)
    if len(_BASE_URL_TEXTS) >= 64:
        _BASE_URL_TEXTS.clear()
    _BASE_URL_TEXTS[id(url)] = (url, text)
    return text


_identities: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], str]] = (
    weakref.WeakKeyDictionary()
)


def _caller_headers(options: Any) -> dict[str, Any]:
    """The identity-relevant headers the caller set (values may be the SDK's `Omit` marker,
    which removes a header the client would send)."""
    headers = options.headers if isinstance(options.headers, Mapping) else {}
    return {
        key: value
        for key, value in headers.items()
        if key.lower() not in _IRRELEVANT_HEADERS and not key.lower().startswith(_SDK_HEADER_PREFIX)
    }


def _client_state(client: Any, base_url: str) -> tuple[Any, ...]:
    """What a client's identity is made of, as far as its attributes tell (rechecked per call:
    a changed key or base URL means a new identity)."""
    attributes = getattr(client, "__dict__", {})
    return (
        base_url,
        attributes.get("api_key"),
        attributes.get("auth_token"),
        attributes.get("organization"),
        attributes.get("project"),
        id(attributes.get("_custom_headers")),
        id(attributes.get("_custom_query")),
    )


def identity_signature(
    client: Any, base_url: str, path: str, call_headers: Mapping[str, Any]
) -> tuple[Any, ...]:
    """The cache key of a client identity: the client's state, the path and the call's headers
    (a header the call removes counts by the marker's type)."""
    return method_signature(client, base_url, path, header_key(call_headers))


def header_key(call_headers: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The call's headers as `identity_signature` counts them (fixed for a create method: it
    keeps them, see `stainless_direct.CreateMethod`)."""
    return tuple(
        sorted(
            (key, value if isinstance(value, str) else f"<{type(value).__name__}>")
            for key, value in call_headers.items()
        )
    )


def method_signature(
    client: Any, base_url: str, path: str, headers: tuple[tuple[str, str], ...]
) -> tuple[Any, ...]:
    """`identity_signature` for headers already made a `header_key`."""
    return (_client_state(client, base_url), path, headers)


def cached_client_key(client: Any, signature: tuple[Any, ...]) -> str | None:
    """The identity an earlier call with this signature had on this client, if any."""
    known = _identities.get(client)
    return known.get(signature) if known is not None else None


def identity_of(client: Any, http_request: Any) -> str:
    """The digest of where and as whom `http_request` goes (no secret in the clear)."""
    identity = sorted(
        (key.lower(), value)
        for key, value in http_request.headers.items()
        if key.lower() not in _IRRELEVANT_HEADERS and not key.lower().startswith(_SDK_HEADER_PREFIX)
    )
    return digest(str(client.base_url), http_request.url.query, identity)


_IDENTITIES_PER_CLIENT = 256
"""Signatures remembered per client: calls that each set a header of their own (a trace id, say)
would otherwise grow the cache without end."""


def _remember_identity(client: Any, signature: tuple[Any, ...], key: str) -> None:
    # A client that cannot be weakly referenced is worked out every time.
    with contextlib.suppress(TypeError):
        known = _identities.setdefault(client, {})
        if len(known) >= _IDENTITIES_PER_CLIENT:
            known.clear()
        known[signature] = key


# -- preparing a call --------------------------------------------------------------------------


def validates_directly(client: Any, cast_to: Any, options: Any = None) -> bool:
    """Whether the SDK's processing of a successful answer to this call is plain validation of
    `cast_to` (no raw response, no `parse()` helper, no strict client)."""
    if getattr(client, "_strict_response_validation", False):
        return False
    if options is not None:
        if callable(getattr(options, "post_parser", None)):
            return False
        headers = options.headers if isinstance(options.headers, Mapping) else {}
        if any(key.lower() == RAW_RESPONSE_HEADER.lower() for key in headers):
            return False
    return _is_sdk_model(client.__class__, cast_to)


@functools.cache
def _is_sdk_model(client_type: type, cast_to: Any) -> bool:
    if not (inspect.isclass(cast_to) and issubclass(cast_to, pydantic.BaseModel)):
        return False
    base_model = getattr(_sdk_module(client_type, "_models"), "BaseModel", None)
    if base_model is None or not issubclass(cast_to, base_model):
        return False
    # The SDK's construction also keeps a field given by its alias among the extras:
    # validation does not, so models with aliased fields take the SDK's path.
    return not _has_aliased_fields(cast_to)


def _has_aliased_fields(model: type[pydantic.BaseModel]) -> bool:
    seen: set[int] = set()
    pending: list[Any] = [model]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if inspect.isclass(current) and issubclass(current, pydantic.BaseModel):
            for name, field in current.model_fields.items():
                if field.alias is not None and field.alias != name:
                    return True
                pending.append(field.annotation)
        else:
            pending.extend(typing.get_args(current))
    return False


async def prepare(client: Any, cast_to: Any, options: Any) -> PreparedCall:
    """Take the steps the SDK's `request()` takes before sending, without sending.

    Works for async and sync clients alike. The caller's options object is left untouched.
    """
    caller_headers = _caller_headers(options)
    copy_and_prepare = getattr(client, "_copy_and_prepare", None)
    if copy_and_prepare is not None:
        # anthropic 2.x merges `extra_body` and strips its `Omit` sentinels here.
        prepared = await _settle(copy_and_prepare(options))
    else:
        prepared = options.model_copy()
    cast_to = client._maybe_override_cast_to(cast_to, prepared)
    prepared = await _settle(client._prepare_options(prepared))
    path = path_of(str(prepared.url))
    signature = identity_signature(client, base_url_text(client), str(prepared.url), caller_headers)
    client_key = cached_client_key(client, signature)
    json_data = prepared.json_data
    raw_body = None
    if prepared.extra_json is None and isinstance(json_data, Mapping):
        raw_body = encode_json(json_data)
    if raw_body is None or client_key is None or VERIFY_FAST_PATHS:
        # The SDK's own request: its serializer decides about dates, models and `extra_body`,
        # and its headers give the client identity.
        http_request = client._build_request(prepared)
        sdk_body = json.loads(http_request.content or b"{}")
        sdk_key = identity_of(client, http_request)
        if VERIFY_FAST_PATHS:
            _verify(raw_body is None or json.loads(raw_body) == sdk_body, "body", path)
            _verify(client_key in (None, sdk_key), "client identity", path)
        if raw_body is None:
            json_data = sdk_body
            raw_body = encode_json(sdk_body) or b"{}"
        client_key = sdk_key
        _remember_identity(client, signature, client_key)
    return PreparedCall(
        cast_to=cast_to,
        options=prepared,
        path=path,
        raw_body=raw_body,
        body=json_data,
        call_headers=caller_headers,
        client_key=client_key,
        validate_directly=validates_directly(client, cast_to, prepared),
    )


# -- answering a call --------------------------------------------------------------------------


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


async def _request_options(client: Any, call: PreparedCall) -> Any:
    """The call's prepared request options, made now for a call built from keyword arguments."""
    if call.options is not None:
        return call.options
    final_options = _sdk_module(type(client), "_models").FinalRequestOptions
    options = final_options.construct(method="post", url=call.path, json_data=dict(call.body))
    return await _settle(client._prepare_options(options))


async def http_request_of(client: Any, call: PreparedCall) -> Any:
    """The HTTP request the SDK would have sent for `call` (built now: only answers that go
    through the SDK's response processing, and errors, need it)."""
    return client._build_request(await _request_options(client, call))


async def respond(
    client: Any,
    call: PreparedCall,
    status_code: int,
    body: Any,
    headers: Mapping[str, str],
    request_id_header: str,
) -> Any:
    """What the SDK returns (or raises) for this call had the provider answered `body`."""
    if call.validate_directly and 200 <= status_code < 300:
        direct = _validate(call.cast_to, body, headers.get(request_id_header))
        if direct is not None:
            if VERIFY_FAST_PATHS:
                sdk = await _sdk_response(client, call, status_code, body, headers)
                _verify(same_model(direct, sdk), "response", call.path)
            return direct
    return await _sdk_response(client, call, status_code, body, headers)


def respond_now(request: BatchRequest, result: LineResult) -> Any:
    """`respond`'s answer to a Stainless provider's line when it is a plain model the SDK's type
    validates (built without awaiting: `RespondsAtOnce.response_now`); else `None`.

    `None` too while `VERIFY_FAST_PATHS` is on: `respond` then builds the answer and checks it
    against the SDK's.
    """
    call: PreparedCall = request.call
    status_code = result.status_code
    if VERIFY_FAST_PATHS or not call.validate_directly or status_code is None:
        return None
    if not 200 <= status_code < 300:
        return None
    # An empty request id is no header to the SDK: `_request_id` is then None.
    return _validate(call.cast_to, result.body, result.request_id or None)


def _validate(cast_to: Any, body: Any, request_id: str | None) -> Any:
    try:
        model = cast_to.model_validate(body)
    except pydantic.ValidationError:
        # Not what the SDK's types expect: the SDK's lenient construction decides.
        return None
    _unset_extras(model)
    # What the SDK's `add_request_id` (`model._request_id = ...`) leaves, without pydantic's
    # attribute machinery where it provably does the same.
    model_type = type(model)
    if _request_id_is_plain_attribute(model_type):
        object.__setattr__(model, "_request_id", request_id)
    elif model.__pydantic_private__ is None and "_request_id" in model_type.__private_attributes__:
        object.__setattr__(model, "__pydantic_private__", {"_request_id": request_id})
    else:
        model._request_id = request_id
    return model


_PLAIN_REQUEST_ID: dict[type, bool] = {}


def _request_id_is_plain_attribute(model_type: type) -> bool:
    """Whether pydantic's `__setattr__` stores `_request_id` as a plain instance attribute: no
    private attribute or class variable of that name, and no `__setattr__` of the SDK's own."""
    plain = _PLAIN_REQUEST_ID.get(model_type)
    if plain is None:
        plain = _PLAIN_REQUEST_ID[model_type] = (
            vars(pydantic.BaseModel)["__setattr__"] is getattr(model_type, "__setattr__", None)
            and "_request_id" not in getattr(model_type, "__private_attributes__", {"_request_id"})
            and "_request_id" not in getattr(model_type, "__class_vars__", {"_request_id"})
        )
    return plain


_SEQUENCES = (list, tuple)  # a constant: `list | tuple` would build a new object per call


def _unset_extras(model: pydantic.BaseModel) -> None:
    """Leave fields the SDK's types do not declare out of `model_fields_set`, as the SDK's own
    construction does (validation counts them as set)."""
    extra = model.__pydantic_extra__
    if extra:
        model.__pydantic_fields_set__.difference_update(extra)
    values = model.__dict__
    for name in _nested_model_fields(type(model)):
        value = values.get(name)
        if value is None:
            continue
        if isinstance(value, pydantic.BaseModel):
            _unset_extras(value)
        elif isinstance(value, _SEQUENCES):
            for item in value:
                if isinstance(item, pydantic.BaseModel):
                    _unset_extras(item)
        elif isinstance(value, dict):
            for item in value.values():
                if isinstance(item, pydantic.BaseModel):
                    _unset_extras(item)


@functools.cache
def _nested_model_fields(model: type[pydantic.BaseModel]) -> tuple[str, ...]:
    """The fields of `model` whose values may hold models."""
    return tuple(
        name for name, field in model.model_fields.items() if _may_hold_model(field.annotation)
    )


def _may_hold_model(annotation: Any) -> bool:
    if inspect.isclass(annotation) and issubclass(annotation, pydantic.BaseModel):
        return True
    return any(_may_hold_model(argument) for argument in typing.get_args(annotation))


async def _sdk_response(
    client: Any, call: PreparedCall, status_code: int, body: Any, headers: Mapping[str, str]
) -> Any:
    options = await _request_options(client, call)
    http_request = client._build_request(options)
    response = http_module(http_request).Response(
        status_code, json=body, request=http_request, headers=headers
    )
    if status_code >= 400:
        raise client._make_status_error_from_response(response)
    return await _settle(
        client._process_response(
            cast_to=call.cast_to,
            options=options,
            response=response,
            stream=False,
            stream_cls=None,
        )
    )


# -- verification ------------------------------------------------------------------------------


def _verify(condition: bool, what: str, path: str) -> None:
    if not condition:
        raise AssertionError(
            f"batchling's shortcut for the {what} of POST {path} differs from the SDK's"
        )


def same_model(left: Any, right: Any) -> bool:
    """Whether two SDK results are the same: types, set fields, extras and request ids."""
    if type(left) is not type(right):
        return False
    if isinstance(left, pydantic.BaseModel):
        if left.model_fields_set != right.model_fields_set:
            return False
        if getattr(left, "_request_id", None) != getattr(right, "_request_id", None):
            return False
        if not same_model(left.__pydantic_extra__ or {}, right.__pydantic_extra__ or {}):
            return False
        return all(
            same_model(getattr(left, name), getattr(right, name))
            for name in type(left).model_fields
        )
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same_model(left[k], right[k]) for k in left)
    if isinstance(left, list | tuple):
        return len(left) == len(right) and all(map(same_model, left, right))
    return bool(left == right)


def is_closed(client: Any) -> bool:
    """Whether a Stainless SDK client has been closed (its HTTP client can send no more)."""
    check = getattr(client, "is_closed", None)
    return bool(check()) if callable(check) else False


def job_clients(clients: Iterable[Any]) -> JobClients:
    """The callers' clients a job is followed with (see `batchling.job_clients`)."""
    return JobClients(clients, is_closed)


def is_transient_status(status_code: int) -> bool:
    """Whether an HTTP status is worth retrying (as the SDKs themselves judge it)."""
    return status_code in (408, 409, 429) or status_code >= 500
