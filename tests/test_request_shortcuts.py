"""The shortcuts past the SDKs' own per-call steps: same bodies, same answers, same warnings.

`batchling.stainless_direct` builds `chat.completions.create` and `messages.create` bodies from
their keyword arguments, and `batchling.stainless` validates plain answers straight into the SDK's
model. Every test in the suite runs with `BATCHLING_VERIFY_FAST_PATHS=1` (see conftest), which
checks each shortcut against the SDK; the tests here pin down what a user sees.
"""

from __future__ import annotations

import asyncio
import typing
import warnings
from typing import Any

import anthropic
import openai
import pytest
from anthropic.resources.messages import messages as anthropic_messages
from openai._utils._transform import PropertyInfo
from openai.types.chat import ChatCompletion

from batchling import stainless, stainless_direct
from batchling.providers import openai as openai_provider
from batchling.testing import FakeProviderServer
from tests.conftest import fast_batchify

CHAT_CALLS: list[dict[str, Any]] = [
    {"max_tokens": 64, "temperature": 0.2, "top_p": 0.9, "seed": 7, "n": 2},
    {"stop": ["\n\n", "END"], "presence_penalty": 0.5, "frequency_penalty": -0.5},
    {"logit_bias": {"50256": -100}, "logprobs": True, "top_logprobs": 3, "user": "u-1"},
    {"metadata": {"order": "A-17"}, "store": False, "service_tier": "flex"},
    {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "description": "Find a product",
                    "parameters": {
                        "type": "object",
                        "properties": {"sku": {"type": "string"}},
                        "required": ["sku"],
                    },
                    "strict": True,
                },
            }
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
    },
    {
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "title",
                "schema": {"type": "object", "properties": {"title": {"type": "string"}}},
                "strict": True,
            },
        }
    },
    {"reasoning_effort": "low", "max_completion_tokens": 200, "stream": False},
    {"temperature": openai.NOT_GIVEN, "timeout": 30.0, "extra_headers": None},
]


def _chat_messages(marker: str) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You write product titles."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": f"Title for {marker}"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            ],
        },
    ]


def _bodies_by_marker(bodies: list[Any], markers: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for body in bodies:
        text = repr(body)
        for marker in markers:
            if f"Title for {marker}'" in text:
                found.setdefault(marker, []).append(body)
    return found


async def test_chat_batch_lines_carry_the_body_the_sdk_sends_in_real_time(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    markers = [f"item-{index}" for index in range(len(CHAT_CALLS))]
    for marker, extra in zip(markers, CHAT_CALLS, strict=True):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=_chat_messages(marker), **extra
        )
    direct: list[stainless.PreparedCall] = []
    original = stainless_direct.prepared_call

    async def spy(*args: Any, **kwargs: Any) -> stainless.PreparedCall | None:
        call = await original(*args, **kwargs)
        if call is not None:
            direct.append(call)
        return call

    monkeypatch.setattr(stainless_direct, "prepared_call", spy)
    async with fast_batchify():
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=_chat_messages("warm-up")
        )
        await asyncio.gather(
            *(
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=_chat_messages(marker), **extra
                )
                for marker, extra in zip(markers, CHAT_CALLS, strict=True)
            )
        )

    assert len(direct) == len(CHAT_CALLS)  # every call after the first took the shortcut
    pairs = _bodies_by_marker(fake_server.received_bodies, markers)
    for marker in markers:
        live, batched = pairs[marker]
        assert batched == live


async def test_messages_batch_lines_carry_the_body_the_sdk_sends_in_real_time(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    extras: list[dict[str, Any]] = [
        {"system": "Be brief.", "stop_sequences": ["END"], "service_tier": "auto"},
        {
            "system": [
                {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}
            ],
            "metadata": {"user_id": "u-1"},
        },
        {
            "tools": [
                {
                    "name": "lookup",
                    "description": "Find a product",
                    "input_schema": {"type": "object", "properties": {"sku": {"type": "string"}}},
                }
            ],
            "tool_choice": {"type": "auto"},
        },
        {"thinking": {"type": "enabled", "budget_tokens": 2048}, "max_tokens": 4096},
    ]
    markers = [f"msg-{index}" for index in range(len(extras))]

    def call(marker: str, extra: dict[str, Any]) -> Any:
        arguments: dict[str, Any] = {"max_tokens": 64, **extra}
        return anthropic_client.messages.create(
            model="claude-haiku-4-5",
            messages=[{"role": "user", "content": f"Title for {marker}"}],
            **arguments,
        )

    for marker, extra in zip(markers, extras, strict=True):
        await call(marker, extra)
    async with fast_batchify():
        await call("warm-up", {})
        await asyncio.gather(
            *(call(marker, extra) for marker, extra in zip(markers, extras, strict=True))
        )

    pairs = _bodies_by_marker(fake_server.received_bodies, markers)
    for marker in markers:
        live, batched = pairs[marker]
        assert batched == live


async def test_plain_calls_skip_the_sdk_request_building_after_the_first(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stainless, "VERIFY_FAST_PATHS", False)
    built: list[str] = []
    original = openai.AsyncOpenAI._build_request

    def counting(self: openai.AsyncOpenAI, options: Any, **kwargs: Any) -> Any:
        built.append(str(options.url))
        return original(self, options, **kwargs)

    monkeypatch.setattr(openai.AsyncOpenAI, "_build_request", counting)
    async with fast_batchify():
        replies = await asyncio.gather(
            *(
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"q{i}"}]
                )
                for i in range(50)
            )
        )
    # One request built to learn the client's identity; the batch job's own calls come after.
    assert built.count("/chat/completions") == 1
    assert [reply.choices[0].message.content for reply in replies] == [
        f"echo: q{i}" for i in range(50)
    ]
    assert all(type(reply) is ChatCompletion for reply in replies)


async def test_a_key_changed_on_the_client_starts_a_separate_job(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    async with fast_batchify():
        first = asyncio.ensure_future(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}]
            )
        )
        await asyncio.sleep(0)
        client.api_key = "sk-test-key-rotated"
        second = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "b"}]
        )
        await asyncio.gather(first, second)
    assert sorted(fake_server.stats.lines_per_batch) == [1, 1]


def test_a_create_whose_code_names_an_unreviewed_step_takes_the_sdk_path() -> None:
    async def create(*, model: str, messages: list[Any]) -> Any:
        audit_log(model)  # type: ignore[name-defined]  # noqa: F821
        return await _post("/chat/completions", body={"model": model, "messages": messages})  # type: ignore[name-defined]  # noqa: F821

    described = stainless_direct.describe(
        create,
        path="/chat/completions",
        cast_to=ChatCompletion,
        sdk_package="openai",
        known_names=openai_provider.CHAT_CREATE_NAMES,
    )
    assert described is None


def test_params_renaming_a_key_on_the_wire_take_the_sdk_path() -> None:
    class Params(typing.TypedDict, total=False):
        model: str
        card_id: typing.Annotated[str, PropertyInfo(alias="cardID")]

    async def create(*, model: str, card_id: str) -> Any:
        return await _post("/cards", body={"model": model, "card_id": card_id})  # type: ignore[name-defined]  # noqa: F821

    described = stainless_direct.describe(
        create,
        path="/cards",
        cast_to=ChatCompletion,
        sdk_package="openai",
        known_names=frozenset({"_post"}),
        params_type=Params,
    )
    assert described is None


async def test_a_deprecated_anthropic_model_still_warns_inside_batchify(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    deprecated = next(iter(anthropic_messages.DEPRECATED_MODELS))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with fast_batchify():
            reply = await anthropic_client.messages.create(
                model=deprecated, max_tokens=16, messages=[{"role": "user", "content": "hi"}]
            )
    assert any(
        issubclass(item.category, DeprecationWarning) and deprecated in str(item.message)
        for item in caught
    )
    assert reply.content[0].type == "text"
    assert fake_server.stats.batches_created == 1


async def test_answers_leave_undeclared_fields_out_of_model_fields_set_as_the_sdk_does(
    client: openai.AsyncOpenAI,
) -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "hi", "new_field": {"a": 1}},
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        "brand_new": [1, 2],
    }
    call = stainless.PreparedCall(
        cast_to=ChatCompletion,
        options=None,
        path="/chat/completions",
        raw_body=b"{}",
        body={"model": "gpt-4o-mini", "messages": []},
        call_headers={},
        client_key="k",
        validate_directly=True,
    )
    direct = await stainless.respond(
        client, call, 200, body, {"x-request-id": "req_1"}, "x-request-id"
    )
    sdk = await stainless._sdk_response(client, call, 200, body, {"x-request-id": "req_1"})
    assert stainless.same_model(direct, sdk)
    assert "brand_new" not in direct.model_fields_set
    assert direct.brand_new == [1, 2]  # type: ignore[attr-defined]
    assert direct.choices[0].message.new_field == {"a": 1}  # type: ignore[attr-defined]
    assert direct._request_id == "req_1"


async def test_an_answer_the_types_reject_is_built_by_the_sdk_leniently(
    client: openai.AsyncOpenAI,
) -> None:
    body = {"id": "chatcmpl-1", "object": "chat.completion", "created": "not a number"}
    call = stainless.PreparedCall(
        cast_to=ChatCompletion,
        options=None,
        path="/chat/completions",
        raw_body=b"{}",
        body={"model": "gpt-4o-mini", "messages": []},
        call_headers={},
        client_key="k",
        validate_directly=True,
    )
    answer = await stainless.respond(client, call, 200, body, {}, "x-request-id")
    assert type(answer) is ChatCompletion
    assert answer.created == "not a number"  # what the SDK's construction keeps
