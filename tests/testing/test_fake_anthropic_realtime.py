"""Anthropic real-time Messages, driven by the real AsyncAnthropic client."""

from __future__ import annotations

from typing import Literal

import anthropic
import httpx2
import pytest
from anthropic.types import Message
from pydantic import BaseModel

from batchling.testing import FakeProviderServer

from .anthropic_support import MODEL, params


class Address(BaseModel):
    city: str
    zip_code: int


class Person(BaseModel):
    name: str
    age: int
    tags: list[str]
    mood: Literal["happy", "sad"]
    address: Address
    nickname: str | None


async def test_message_echoes_the_last_user_text_with_word_count_usage(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    raw = await anthropic_client.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=100,
        system="be kind",
        messages=[
            {"role": "user", "content": "earlier question"},
            {"role": "assistant", "content": "earlier answer"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "first part"},
                    {"type": "text", "text": "second"},
                ],
            },
        ],
    )
    message = Message.model_validate(raw.http_response.json())
    assert raw.http_response.headers["request-id"].startswith("req_")
    assert message.id.startswith("msg_")
    assert message.model == MODEL
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "echo: first part second"  # type: ignore[union-attr]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, 4)
    assert message.usage.service_tier == "standard"
    assert fake_server.stats.provider("anthropic").realtime_paths == ["/v1/messages"]
    assert fake_server.stats.provider("openai").realtime_calls == 0
    assert fake_server.received_bodies[0]["system"] == "be kind"


async def test_max_tokens_cuts_the_reply_with_max_tokens_stop_reason(
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    message = await anthropic_client.messages.create(**params("a b c d", max_tokens=2))
    assert message.content[0].text == "echo: a"  # type: ignore[union-attr]
    assert message.stop_reason == "max_tokens"


async def test_parse_with_output_format_returns_an_instance_of_the_model(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    parsed = await anthropic_client.messages.parse(
        model=MODEL,
        max_tokens=200,
        messages=[{"role": "user", "content": "three little words"}],
        output_format=Person,
    )
    assert parsed.parsed_output == Person(
        name="three little words",
        age=3,
        tags=["three little words"],
        mood="happy",
        address=Address(city="three little words", zip_code=3),
        nickname="three little words",
    )
    (body,) = fake_server.received_bodies
    assert body["output_config"]["format"]["type"] == "json_schema"
    assert body["output_config"]["format"]["schema"]["title"] == "Person"


async def test_forced_tool_choice_returns_a_tool_use_block_with_schema_valid_input(
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    tools: list[anthropic.types.ToolParam] = [
        {"name": "other", "input_schema": {"type": "object", "properties": {}}},
        {"name": "lookup", "input_schema": Address.model_json_schema()},  # type: ignore[typeddict-item]
    ]
    named = await anthropic_client.messages.create(
        **params("where is it"), tools=tools, tool_choice={"type": "tool", "name": "lookup"}
    )
    assert named.stop_reason == "tool_use"
    (block,) = named.content
    assert block.type == "tool_use"
    assert block.id.startswith("toolu_")
    assert block.name == "lookup"
    assert Address.model_validate(block.input) == Address(city="where is it", zip_code=3)
    any_tool = await anthropic_client.messages.create(
        **params("x"), tools=tools, tool_choice={"type": "any"}
    )
    assert any_tool.content[0].type == "tool_use"
    assert any_tool.content[0].name == "other"
    automatic = await anthropic_client.messages.create(
        **params("x"), tools=tools, tool_choice={"type": "auto"}
    )
    assert automatic.content[0].type == "text"


async def test_raw_stream_sends_every_event_type_in_order(
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    stream = await anthropic_client.messages.create(**params("stream me please"), stream=True)
    kinds: list[str] = []
    text = ""
    async for event in stream:
        kinds.append(event.type)
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            text += event.delta.text
    assert text == "echo: stream me please"
    assert kinds[0] == "message_start"
    assert kinds[1] == "content_block_start"
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[2:-3]) == {"content_block_delta"}


async def test_stream_helper_accumulates_text_and_tool_use(
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    async with anthropic_client.messages.stream(**params("hello there")) as stream:
        pieces = [piece async for piece in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(pieces) == "echo: hello there"
    assert final.content[0].text == "echo: hello there"  # type: ignore[union-attr]
    assert final.usage.output_tokens == 3
    async with anthropic_client.messages.stream(
        **params("near"),
        tools=[{"name": "lookup", "input_schema": Address.model_json_schema()}],  # type: ignore[typeddict-item]
        tool_choice={"type": "tool", "name": "lookup"},
    ) as tool_stream:
        tool_final = await tool_stream.get_final_message()
    assert tool_final.stop_reason == "tool_use"
    assert tool_final.content[0].input == {"city": "near", "zip_code": 1}  # type: ignore[union-attr]


async def test_count_tokens_counts_system_and_message_words(
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    counted = await anthropic_client.messages.count_tokens(
        model=MODEL, system="one two", messages=[{"role": "user", "content": "three four five"}]
    )
    assert counted.input_tokens == 5


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
async def test_failure_marker_answers_that_status_without_retries(
    anthropic_client: anthropic.AsyncAnthropic,
    fake_server: FakeProviderServer,
    status: int,
    error_class: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    with pytest.raises(error_class) as caught:
        await anthropic_client.messages.create(**params(f"please [[fail:{status}]]"))
    error = caught.value
    assert error.status_code == status
    assert error.response.headers["x-should-retry"] == "false"
    assert error.request_id is not None
    assert error.request_id.startswith("req_")
    assert error.body == {
        "type": "error",
        "error": {"type": error_type, "message": f"Injected failure {status} for this request."},
        "request_id": error.request_id,
    }
    assert fake_server.stats.realtime_calls == 1


async def test_invalid_params_are_bad_requests(anthropic_client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        await anthropic_client.messages.create(**params("x", max_tokens=0))
    with pytest.raises(anthropic.BadRequestError, match="messages"):
        await anthropic_client.messages.create(model=MODEL, max_tokens=5, messages=[])
    with pytest.raises(anthropic.BadRequestError, match="tool_choice"):
        await anthropic_client.messages.create(
            **params("x"),
            tools=[{"name": "a", "input_schema": {"type": "object"}}],
            tool_choice={"type": "tool", "name": "missing"},
        )


async def test_api_key_is_accepted_as_x_api_key_or_bearer_and_required(
    fake_server: FakeProviderServer,
) -> None:
    body = params("hi")
    async with httpx2.AsyncClient(base_url=fake_server.anthropic_base_url) as http:
        by_header = await http.post("/v1/messages", json=body, headers={"x-api-key": "k1"})
        by_bearer = await http.post(
            "/v1/messages", json=body, headers={"Authorization": "Bearer k2"}
        )
        missing = await http.post("/v1/messages", json=body)
    assert (by_header.status_code, by_bearer.status_code) == (200, 200)
    assert missing.status_code == 401
    assert missing.json()["type"] == "error"
    assert missing.json()["error"]["type"] == "authentication_error"
    assert missing.headers["request-id"] == missing.json()["request_id"]


async def test_drop_next_closes_the_connection_and_the_sdk_retries(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    fake_server.drop_next("POST /v1/messages")
    message = await anthropic_client.messages.create(**params("again"))
    assert message.content[0].text == "echo: again"  # type: ignore[union-attr]
    assert fake_server.stats.provider("anthropic").realtime_calls == 2
    assert fake_server.pending_faults == 0


async def test_fail_next_more_times_than_retries_raises_the_sdk_error(
    anthropic_client: anthropic.AsyncAnthropic, fake_server: FakeProviderServer
) -> None:
    fake_server.fail_next("POST /v1/messages", 529, times=3)
    with pytest.raises(anthropic.OverloadedError):
        await anthropic_client.messages.create(**params("x"))
    assert fake_server.stats.realtime_calls == 3
