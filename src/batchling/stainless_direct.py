"""Calls taken at a Stainless SDK's create method, their body built from its keyword arguments.

A `create(...)` of the openai SDK spends most of its time transforming its arguments against
their `TypedDict` types before it reaches the client's `request()`, where batchling otherwise
intercepts. For arguments that are plain JSON values (dicts, lists, strings, numbers, booleans,
`None`), that transform changes nothing but dropping omitted arguments, unless a type in the
method's parameters gives a key another name on the wire (a `PropertyInfo(alias=...)`). So, for
a method whose parameter types declare no alias anywhere, batchling builds the body from the
keyword arguments and skips the SDK's steps. Anything else (a model or date among the arguments,
`extra_headers`, `extra_body`, `stream=True`, an unknown argument, a client seen for the first
time) takes the SDK's own path, where the request-level interception handles it exactly.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import typing
from typing import Any

from batchling import stainless

_REQUEST_OPTIONS = frozenset({"extra_headers", "extra_query", "extra_body"})
_IGNORED = frozenset({"self", "timeout"})
"""`timeout` bounds an HTTP request that a batched call never makes."""


@dataclasses.dataclass(frozen=True, slots=True)
class CreateMethod:
    """What batchling knows of one SDK create method."""

    path: str
    cast_to: Any
    params_type: Any
    parameters: frozenset[str]
    """The keyword arguments that become body fields."""
    required: frozenset[str]
    sentinels: tuple[type, ...]
    """The SDK's markers of an omitted argument (`NotGiven`, `Omit`)."""

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
        if not self.required <= body.keys():
            return None
        return body


def describe(
    function: Any, *, path: str, cast_to: Any, params_type: Any, sdk_package: str
) -> CreateMethod | None:
    """A `CreateMethod` for `function`, or `None` if its bodies cannot be built from its
    arguments (its parameter types rename a key on the wire, or cannot be read)."""
    try:
        if _declares_alias(params_type, sys.modules[sdk_package + "._utils._transform"]):
            return None
        signature = inspect.signature(function)
    except (KeyError, NameError, TypeError, ValueError, AttributeError):
        return None
    types_module = sys.modules.get(sdk_package + "._types")
    sentinels = tuple(
        cls
        for cls in (getattr(types_module, "NotGiven", None), getattr(types_module, "Omit", None))
        if isinstance(cls, type)
    )
    parameters = {
        name
        for name, parameter in signature.parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    required = {
        name
        for name, parameter in signature.parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
        and parameter.default is inspect.Parameter.empty
    }
    return CreateMethod(
        path=path,
        cast_to=cast_to,
        params_type=params_type,
        parameters=frozenset(parameters - _REQUEST_OPTIONS - _IGNORED),
        required=frozenset(required),
        sentinels=sentinels,
    )


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
    signature = stainless.identity_signature(client, base_url, method.path, {})
    client_key = stainless.cached_client_key(client, signature)
    if client_key is None:
        return None
    call = stainless.PreparedCall(
        cast_to=method.cast_to,
        options=None,
        path=method.path,
        raw_body=raw_body,
        body=body,
        call_headers={},
        client_key=client_key,
        validate_directly=stainless.validates_directly(client, method.cast_to),
    )
    if stainless.VERIFY_FAST_PATHS:
        await _verify(method, client, call)
    return call


async def _verify(method: CreateMethod, client: Any, call: stainless.PreparedCall) -> None:
    """Check the shortcut against the SDK's own transform and request (tests set
    `stainless.VERIFY_FAST_PATHS`)."""
    package = type(client).__module__.split(".", 1)[0]
    transform = sys.modules[package + "._utils._transform"].maybe_transform
    sdk_body = json.loads(json.dumps(transform(dict(call.body), method.params_type)))
    if sdk_body != json.loads(call.raw_body):
        raise AssertionError(f"the body built for POST {method.path} differs from the SDK's")
    http_request = await stainless.http_request_of(client, call)
    if stainless.identity_of(client, http_request) != call.client_key:
        raise AssertionError(f"the client identity for POST {method.path} differs from the SDK's")
