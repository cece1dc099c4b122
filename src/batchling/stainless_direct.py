"""Calls taken at a Stainless SDK's create method, their body built from its keyword arguments.

Between `create(...)` and the client's `request()`, where batchling otherwise intercepts, the
SDKs spend most of a call's time: openai transforms the arguments against their `TypedDict`
types, both SDKs build and copy request options and walk the body again. For arguments that are
plain JSON values (dicts, lists, strings, numbers, booleans, `None`) all of that changes nothing
but dropping omitted arguments, unless a type in the method's parameters gives a key another
name on the wire (a `PropertyInfo(alias=...)`). So batchling builds the body from the keyword
arguments and skips those steps, under three guards:

- the method's parameter types declare no alias anywhere;
- the method's code uses only names batchling has reviewed (`known_names`): a release that adds
  a step to `create` turns the shortcut off by itself;
- the call is plain: no model or date among the arguments, no `extra_headers`, `extra_body` or
  `extra_query`, no `stream=True`, no unknown argument, and a client whose identity a previous
  call worked out with the SDK's own request.

Anything else takes the SDK's own path, where the request-level interception handles it exactly.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import sys
import typing
from collections.abc import Callable
from typing import Any

from batchling import stainless

log = logging.getLogger(__name__)

_REQUEST_OPTIONS = frozenset({"extra_headers", "extra_query", "extra_body"})
_IGNORED = frozenset({"self", "timeout"})
"""`timeout` bounds an HTTP request that a batched call never makes."""


@dataclasses.dataclass(frozen=True, slots=True)
class CreateMethod:
    """What batchling knows of one SDK create method."""

    path: str
    cast_to: Any
    parameters: frozenset[str]
    """The keyword arguments that become body fields."""
    required: frozenset[str]
    fallback_parameters: frozenset[str]
    """Arguments the SDK turns into something other than a body field (e.g. a header): given
    one, the call takes the SDK's path."""
    headers: dict[str, Any]
    """The headers the method sets on a call that gives none of `fallback_parameters` (e.g.
    anthropic's `Omit` markers for its workspace and user-profile headers)."""
    sentinels: tuple[type, ...]
    """The SDK's markers of an omitted argument (`NotGiven`, `Omit`)."""
    sdk_globals: dict[str, Any]
    """The module globals the method's code reads (e.g. a table of deprecated models)."""
    reference_body: Callable[[dict[str, Any]], Any]
    """What the SDK itself makes of a body (checked against under `VERIFY_FAST_PATHS`)."""
    header_key: tuple[tuple[str, str], ...] = dataclasses.field(init=False)
    """`headers` as the client identity's cache key counts them (`stainless.header_key`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "header_key", stainless.header_key(self.headers))

    def body(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """The body the SDK would send for these arguments, or `None` to let the SDK decide.

        Usually that is `kwargs` itself (a fresh dict for each call): no copy is made then.
        """
        if args:
            return None
        exact = True
        for name, value in kwargs.items():
            if name in self.parameters:
                if isinstance(value, self.sentinels):
                    exact = False
                elif name in self.fallback_parameters:
                    return None
            elif name in _REQUEST_OPTIONS:
                if value:
                    return None
                exact = False
            elif name in _IGNORED:
                exact = False
            else:
                return None  # the SDK raises its own TypeError
        body = kwargs
        if not exact:
            body = {
                name: value
                for name, value in kwargs.items()
                if name in self.parameters and not isinstance(value, self.sentinels)
            }
        if not self.required <= body.keys() or body.get("stream"):
            return None  # the SDK raises, or reports the streamed call at `request`
        return body


def describe(
    function: Any,
    *,
    path: str,
    cast_to: Any,
    sdk_package: str,
    known_names: frozenset[str],
    params_type: Any = None,
    fallback_parameters: frozenset[str] = frozenset(),
    headers: dict[str, Any] | None = None,
) -> CreateMethod | None:
    """A `CreateMethod` for `function`, or `None` if its bodies cannot be built from its
    arguments (its code does something batchling has not reviewed, or its parameter types
    rename a key on the wire, or cannot be read)."""
    inner = inspect.unwrap(function)
    code = getattr(inner, "__code__", None)
    if code is None:
        return None
    unreviewed = set(code.co_names) - known_names
    if unreviewed:
        log.debug(
            "%s.%s uses %s, which batchling has not reviewed: its calls take the SDK's path",
            inner.__module__, inner.__qualname__, ", ".join(sorted(unreviewed)),
        )  # fmt: skip
        return None
    try:
        if params_type is not None and _declares_alias(
            params_type, sys.modules[sdk_package + "._utils._transform"]
        ):
            return None
        signature = inspect.signature(function)
        reference_body = _reference_body(sdk_package, params_type)
    except (KeyError, NameError, TypeError, ValueError, AttributeError, ImportError):
        return None
    types_module = sys.modules.get(sdk_package + "._types")
    sentinels = tuple(
        cls
        for cls in (getattr(types_module, "NotGiven", None), getattr(types_module, "Omit", None))
        if isinstance(cls, type)
    )
    keyword_only = {
        name: parameter
        for name, parameter in signature.parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    return CreateMethod(
        path=path,
        cast_to=cast_to,
        parameters=frozenset(set(keyword_only) - _REQUEST_OPTIONS - _IGNORED),
        required=frozenset(
            name
            for name, parameter in keyword_only.items()
            if parameter.default is inspect.Parameter.empty
        ),
        fallback_parameters=fallback_parameters,
        headers=headers or {},
        sentinels=sentinels,
        sdk_globals=inner.__globals__,
        reference_body=reference_body,
    )


def _reference_body(sdk_package: str, params_type: Any) -> Callable[[dict[str, Any]], Any]:
    """The SDK's own preparation of a body: openai's transform, anthropic's data copy."""
    if params_type is not None:
        transform = sys.modules[sdk_package + "._utils._transform"].maybe_transform
        return lambda body: transform(body, params_type)
    prepare = __import__(
        sdk_package + "._utils._prepare", fromlist=["prepare_request_data"]
    ).prepare_request_data
    return lambda body: prepare(body, location="body")


def _declares_alias(params_type: Any, transform_module: Any) -> bool:
    """Whether any type reachable from `params_type` renames a key on the wire."""
    property_info = transform_module.PropertyInfo
    seen: set[int] = set()
    pending = [params_type]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        origin = typing.get_origin(current)
        if origin is typing.Annotated:
            base, *metadata = typing.get_args(current)
            if any(isinstance(item, property_info) and item.alias for item in metadata):
                return True
            pending.append(base)
        elif origin is typing.Literal:
            continue
        elif origin is not None:
            pending.extend(typing.get_args(current))
        elif typing.is_typeddict(current):
            pending.extend(typing.get_type_hints(current, include_extras=True).values())
    return False


async def prepared_call(
    method: CreateMethod, client: Any, base_url: str, body: dict[str, Any]
) -> stainless.PreparedCall | None:
    """The call, if its body is plain JSON and the client's identity is known already."""
    raw_body = stainless.encode_json(body)
    if raw_body is None:
        return None
    signature = stainless.method_signature(client, base_url, method.path, method.header_key)
    client_key = stainless.cached_client_key(client, signature)
    if client_key is None:
        return None
    call = stainless.PreparedCall(
        cast_to=method.cast_to,
        options=None,
        path=method.path,
        raw_body=raw_body,
        body=body,
        call_headers=method.headers,
        client_key=client_key,
        validate_directly=stainless.validates_directly(client, method.cast_to),
    )
    if stainless.VERIFY_FAST_PATHS:
        await _verify(method, client, call)
    return call


async def _verify(method: CreateMethod, client: Any, call: stainless.PreparedCall) -> None:
    """Check the shortcut against the SDK's own transform and request (tests set
    `stainless.VERIFY_FAST_PATHS`)."""
    sdk_body = json.loads(json.dumps(method.reference_body(dict(call.body))))
    if sdk_body != json.loads(call.raw_body):
        raise AssertionError(f"the body built for POST {method.path} differs from the SDK's")
    http_request = await stainless.http_request_of(client, call)
    if stainless.identity_of(client, http_request) != call.client_key:
        raise AssertionError(f"the client identity for POST {method.path} differs from the SDK's")
