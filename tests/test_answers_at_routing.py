"""Answers built while a job's results are routed (`RespondsAtOnce.response_now`).

The OpenAI and Anthropic providers build plain answers in the scheduler's routing pass, with
Python's garbage collector paused around it (`batchling.collector`). The rest of the suite runs
with `BATCHLING_VERIFY_FAST_PATHS=1`, which sends every answer through `to_response` so that it
can be checked against the SDK; these tests turn it off to exercise the routing pass itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import gc
from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion

from batchling import batchify, collector, stainless
from batchling.provider import RespondsAtOnce
from batchling.providers.anthropic import AnthropicProvider
from batchling.providers.openai import OpenAIProvider
from batchling.testing import FakeProviderServer
from tests.conftest import FAST, fast_batchify


@pytest.fixture(autouse=True)
def answers_at_routing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stainless, "VERIFY_FAST_PATHS", False)


class _Spy:
    """Records what `response_now` and `to_response` were asked, and the collector's state."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, provider_type: type) -> None:
        self.now: list[tuple[Any, Any, Any]] = []
        self.collector_on_while_routing: set[bool] = set()
        self.later = 0
        spy = self
        response_now = provider_type.response_now
        to_response = provider_type.to_response

        def counting_now(provider: Any, request: Any, result: Any) -> Any:
            spy.collector_on_while_routing.add(gc.isenabled())
            answer = response_now(provider, request, result)
            spy.now.append((request, result, answer))
            return answer

        async def counting_later(provider: Any, request: Any, result: Any) -> Any:
            spy.later += 1
            return await to_response(provider, request, result)

        monkeypatch.setattr(provider_type, "response_now", counting_now)
        monkeypatch.setattr(provider_type, "to_response", counting_later)


async def _ask(client: openai.AsyncOpenAI, n: int) -> list[ChatCompletion]:
    """N chat calls in one block; each caller must get the answer to its own question."""
    async with fast_batchify():
        replies = await asyncio.gather(
            *(
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"q{i}"}]
                )
                for i in range(n)
            )
        )
    assert [reply.choices[0].message.content for reply in replies] == [
        f"echo: q{i}" for i in range(n)
    ]
    return replies


def test_the_stainless_providers_build_answers_at_routing() -> None:
    assert isinstance(OpenAIProvider(), RespondsAtOnce)
    assert isinstance(AnthropicProvider(), RespondsAtOnce)


async def test_openai_answers_built_at_routing_are_what_the_sdk_builds(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _Spy(monkeypatch, OpenAIProvider)
    replies = await _ask(client, 20)
    assert all(type(reply) is ChatCompletion for reply in replies)
    assert len(spy.now) == 20
    assert spy.later == 0
    assert spy.collector_on_while_routing == {False}
    assert gc.isenabled()
    for request, result, answer in spy.now:
        headers = {"x-request-id": result.request_id} if result.request_id else {}
        sdk = await stainless._sdk_response(client, request.call, 200, result.body, headers)
        assert stainless.same_model(answer, sdk)
        assert answer._request_id == sdk._request_id


async def test_anthropic_answers_built_at_routing_are_what_the_sdk_builds(
    anthropic_client: anthropic.AsyncAnthropic,
    fake_server: FakeProviderServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = _Spy(monkeypatch, AnthropicProvider)
    async with fast_batchify():
        replies = await asyncio.gather(
            *(
                anthropic_client.messages.create(
                    model="claude-haiku-4-5",
                    max_tokens=32,
                    system="Be brief.",
                    messages=[{"role": "user", "content": f"q{i}"}],
                )
                for i in range(10)
            )
        )
    assert all(type(reply) is Message for reply in replies)
    assert [reply.content[0].text for reply in replies] == [  # type: ignore[union-attr]
        f"echo: q{i}" for i in range(10)
    ]
    assert len(spy.now) == 10
    assert spy.later == 0
    for request, result, answer in spy.now:
        headers = {"request-id": result.request_id} if result.request_id else {}
        sdk = await stainless._sdk_response(
            anthropic_client, request.call, 200, result.body, headers
        )
        assert stainless.same_model(answer, sdk)


async def test_failed_lines_still_raise_the_sdk_error_in_the_callers_task(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _Spy(monkeypatch, OpenAIProvider)
    async with fast_batchify():
        good, bad = await asyncio.gather(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "fine"}]
            ),
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "[[fail:404]]"}]
            ),
            return_exceptions=True,
        )
    assert isinstance(good, ChatCompletion)
    assert isinstance(bad, openai.NotFoundError)
    assert bad.status_code == 404
    assert len(spy.now) == 1
    assert spy.later == 1


async def test_a_fault_building_an_answer_at_routing_leaves_it_to_the_caller(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(provider: Any, request: Any, result: Any) -> Any:
        raise RuntimeError("a plugin bug")

    monkeypatch.setattr(OpenAIProvider, "response_now", broken)
    await _ask(client, 3)
    assert gc.isenabled()


async def test_a_collector_the_program_turned_off_stays_off(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    gc.disable()
    try:
        async with fast_batchify():
            reply = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "q"}]
            )
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert reply.choices[0].message.content == "echo: q"


def test_the_pause_restores_the_collector_even_on_error() -> None:
    assert gc.isenabled()
    with pytest.raises(ValueError, match="boom"), collector.paused():
        assert not gc.isenabled()
        raise ValueError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


async def test_an_empty_request_id_gives_the_same_answer_on_both_paths(
    client: openai.AsyncOpenAI, fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _Spy(monkeypatch, OpenAIProvider)
    await _ask(client, 1)
    ((request, result, _),) = spy.now
    provider = OpenAIProvider()
    without_id = dataclasses.replace(result, request_id="")
    now = provider.response_now(request, without_id)
    later = await provider.to_response(request, without_id)
    assert now is not None
    assert stainless.same_model(now, later)
    assert now._request_id is None
    assert later._request_id is None


def test_sync_clients_get_answers_built_at_routing(
    fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _Spy(monkeypatch, OpenAIProvider)
    with (
        openai.OpenAI(base_url=fake_server.openai_base_url, api_key="k") as sync_client,
        batchify(**FAST, progress=False),
        concurrent.futures.ThreadPoolExecutor(4) as pool,
    ):
        replies = list(
            pool.map(
                lambda i: sync_client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"s{i}"}]
                ),
                range(8),
            )
        )
    assert all(type(reply) is ChatCompletion for reply in replies)
    assert [reply.choices[0].message.content for reply in replies] == [
        f"echo: s{i}" for i in range(8)
    ]
    assert len(spy.now) == 8
    assert spy.later == 0
