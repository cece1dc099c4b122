"""Real-time endpoints answer bodies that validate strictly as the SDK's own types."""

from __future__ import annotations

import json
from typing import Literal

import openai
import pytest
from openai.types import Completion, CreateEmbeddingResponse, ModerationCreateResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response
from pydantic import BaseModel

from batchling.testing import FakeProviderServer
from batchling.testing.replies import embedding_vector

from .support import chat_body


class Address(BaseModel):
    city: str
    zip_code: int


class Person(BaseModel):
    name: str
    age: int
    height: float
    active: bool
    tags: list[str]
    mood: Literal["happy", "sad"]
    address: Address
    nickname: str | None


async def test_chat_completion_echoes_last_user_message_with_word_count_usage(
    openai_client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    raw = await openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": "be kind"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "first part"},
                    {"type": "text", "text": "second"},
                ],
            },
        ],
    )
    completion = ChatCompletion.model_validate(raw.http_response.json())
    assert raw.http_response.headers["x-request-id"].startswith("req_")
    assert completion.model == "gpt-4o"
    assert completion.choices[0].message.content == "echo: first part second"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, 4)
    assert fake_server.stats.realtime_calls == 1
    assert fake_server.stats.realtime_paths == ["/v1/chat/completions"]


async def test_chat_completion_returns_n_choices(openai_client: openai.AsyncOpenAI) -> None:
    completion = await openai_client.chat.completions.create(**chat_body("hi", n=3))
    assert [choice.index for choice in completion.choices] == [0, 1, 2]


async def test_chat_completion_stops_at_max_tokens_with_length_finish_reason(
    openai_client: openai.AsyncOpenAI,
) -> None:
    completion = await openai_client.chat.completions.create(**chat_body("a b c d", max_tokens=2))
    assert completion.choices[0].message.content == "echo: a"
    assert completion.choices[0].finish_reason == "length"


async def test_chat_parse_returns_an_instance_of_the_schema(
    openai_client: openai.AsyncOpenAI,
) -> None:
    parsed = await openai_client.chat.completions.parse(
        model="gpt-4o",
        messages=[{"role": "user", "content": "three little words"}],
        response_format=Person,
    )
    person = parsed.choices[0].message.parsed
    assert person == Person(
        name="three little words",
        age=3,
        height=3.0,
        active=True,
        tags=["three little words"],
        mood="happy",
        address=Address(city="three little words", zip_code=3),
        nickname="three little words",
    )


async def test_chat_forced_tool_call_has_schema_valid_arguments(
    openai_client: openai.AsyncOpenAI,
) -> None:
    tool = openai.pydantic_function_tool(Address, name="lookup")
    completion = await openai_client.chat.completions.parse(
        model="gpt-4o",
        messages=[{"role": "user", "content": "where"}],
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": "lookup"}},
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "lookup"
    assert call.function.parsed_arguments == Address(city="where", zip_code=1)


async def test_chat_stream_yields_chunks_that_rebuild_the_reply(
    openai_client: openai.AsyncOpenAI,
) -> None:
    stream = await openai_client.chat.completions.create(
        **chat_body("stream me please"), stream=True, stream_options={"include_usage": True}
    )
    pieces: list[str] = []
    usage = None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
    assert "".join(pieces) == "echo: stream me please"
    assert usage is not None
    assert usage.completion_tokens == 4


async def test_chat_stream_helper_accumulates_final_completion(
    openai_client: openai.AsyncOpenAI,
) -> None:
    async with openai_client.chat.completions.stream(**chat_body("hello")) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == "echo: hello"


async def test_responses_create_returns_a_valid_response(
    openai_client: openai.AsyncOpenAI,
) -> None:
    raw = await openai_client.responses.with_raw_response.create(
        model="gpt-4o",
        instructions="answer briefly",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "what now"}]}],
    )
    result = Response.model_validate(raw.http_response.json())
    assert result.id.startswith("resp_")
    assert result.status == "completed"
    assert result.output_text == "echo: what now"
    assert result.instructions == "answer briefly"
    assert result.usage is not None
    assert result.usage.input_tokens == 4


async def test_responses_parse_returns_the_schema_instance(
    openai_client: openai.AsyncOpenAI,
) -> None:
    parsed = await openai_client.responses.parse(
        model="gpt-4o", input="two words", text_format=Address
    )
    assert parsed.output_parsed == Address(city="two words", zip_code=2)


async def test_responses_forced_function_call(openai_client: openai.AsyncOpenAI) -> None:
    raw = await openai_client.responses.with_raw_response.create(
        model="gpt-4o",
        input="call it",
        tools=[
            {
                "type": "function",
                "name": "get_city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "strict": False,
            }
        ],
        tool_choice="required",
    )
    result = Response.model_validate(raw.http_response.json())
    call = result.output[0]
    assert call.type == "function_call"
    assert json.loads(call.arguments) == {"city": "call it"}


async def test_embeddings_float_and_default_base64_decode_to_the_same_vector(
    openai_client: openai.AsyncOpenAI,
) -> None:
    raw = await openai_client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["alpha", "beta"], encoding_format="float"
    )
    as_floats = CreateEmbeddingResponse.model_validate(raw.http_response.json())
    default = await openai_client.embeddings.create(
        model="text-embedding-3-small", input=["alpha", "beta"]
    )
    assert [item.embedding for item in default.data] == [item.embedding for item in as_floats.data]
    assert as_floats.data[0].embedding == embedding_vector("alpha", 8)
    assert as_floats.data[0].embedding != as_floats.data[1].embedding
    sized = await openai_client.embeddings.create(model="m", input="x", dimensions=32)
    assert len(sized.data[0].embedding) == 32


async def test_legacy_completion_echoes_the_prompt(openai_client: openai.AsyncOpenAI) -> None:
    raw = await openai_client.completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct", prompt="say this"
    )
    completion = Completion.model_validate(raw.http_response.json())
    assert completion.choices[0].text == "echo: say this"


async def test_moderation_is_unflagged_for_every_input(openai_client: openai.AsyncOpenAI) -> None:
    raw = await openai_client.moderations.with_raw_response.create(input=["one", "two"])
    moderation = ModerationCreateResponse.model_validate(raw.http_response.json())
    assert [result.flagged for result in moderation.results] == [False, False]
    assert moderation.results[0].categories.self_harm is False
    assert moderation.results[0].category_scores.violence == 0.0


async def test_request_without_model_is_a_bad_request(openai_client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await openai_client.chat.completions.create(
            messages=[{"role": "user", "content": "x"}],
            model="",
        )
    assert caught.value.param == "model"


async def test_received_bodies_record_every_parameter(
    openai_client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    await openai_client.chat.completions.create(
        **chat_body("x", temperature=0.25, seed=7), extra_body={"custom_flag": True}
    )
    (body,) = fake_server.received_bodies
    assert body["temperature"] == 0.25
    assert body["seed"] == 7
    assert body["custom_flag"] is True
