"""Gemini real-time calls (generateContent, streaming, embeddings), driven by google-genai."""

from __future__ import annotations

from typing import Literal

import httpx2
import pytest
from google.genai import errors, types
from google.genai.client import AsyncClient
from pydantic import BaseModel

from batchling.testing import FakeProviderServer
from batchling.testing.replies import embedding_vector

from .gemini_support import MODEL, fast_retries, gemini_client_for


class Address(BaseModel):
    city: str
    zip_code: int


class Person(BaseModel):
    name: str
    age: int
    height: float
    tags: list[str]
    mood: Literal["happy", "sad"]
    address: Address
    nickname: str | None


async def test_generate_content_echoes_the_last_user_content_with_usage(
    gemini_client: AsyncClient, fake_server: FakeProviderServer
) -> None:
    response = await gemini_client.models.generate_content(
        model=MODEL,
        contents=[
            types.Content(role="user", parts=[types.Part(text="earlier question")]),
            types.Content(role="model", parts=[types.Part(text="earlier answer")]),
            types.Content(role="user", parts=[types.Part(text="first"), types.Part(text="second")]),
        ],
        config=types.GenerateContentConfig(system_instruction="be kind", temperature=0.2),
    )
    assert response.text == "echo: first second"
    assert response.candidates is not None
    (candidate,) = response.candidates
    assert candidate.finish_reason == types.FinishReason.STOP
    assert candidate.content is not None
    assert candidate.content.role == "model"
    assert response.model_version == MODEL
    assert response.response_id
    usage = response.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count) == (8, 3)
    assert usage.total_token_count == 11
    path = f"/v1/models/{MODEL}:generateContent"
    assert fake_server.stats.provider("gemini").realtime_paths == [path]
    assert fake_server.stats.realtime_paths == [path]
    (body,) = fake_server.received_bodies
    assert body["systemInstruction"] == {"parts": [{"text": "be kind"}], "role": "user"}
    assert body["generationConfig"] == {"temperature": 0.2}


async def test_pydantic_response_schema_gives_a_parsed_instance(
    gemini_client: AsyncClient, fake_server: FakeProviderServer
) -> None:
    response = await gemini_client.models.generate_content(
        model=MODEL,
        contents="three little words",
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=Person
        ),
    )
    assert response.parsed == Person(
        name="three little words",
        age=3,
        height=3.0,
        tags=["three little words"],
        mood="happy",
        address=Address(city="three little words", zip_code=3),
        nickname="three little words",
    )
    schema = fake_server.received_bodies[0]["generationConfig"]["responseSchema"]
    assert schema["type"] == "OBJECT"
    assert schema["properties"]["age"]["type"] == "INTEGER"


async def test_response_json_schema_gives_a_parsed_dict(gemini_client: AsyncClient) -> None:
    response = await gemini_client.models.generate_content(
        model=MODEL,
        contents="two words",
        config=types.GenerateContentConfig(
            response_mime_type="application/json",
            response_json_schema=Address.model_json_schema(),
        ),
    )
    assert response.parsed == {"city": "two words", "zip_code": 2}


async def test_function_calling_mode_any_returns_a_function_call_with_valid_args(
    gemini_client: AsyncClient,
) -> None:
    lookup = types.FunctionDeclaration(
        name="lookup", parameters_json_schema=Address.model_json_schema()
    )
    schema_style = types.FunctionDeclaration(
        name="other",
        parameters=types.Schema(
            type=types.Type.OBJECT, properties={"n": types.Schema(type=types.Type.INTEGER)}
        ),
    )
    response = await gemini_client.models.generate_content(
        model=MODEL,
        contents="where is it",
        config=types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[schema_style, lookup])],
            tool_config=types.ToolConfig(
                function_calling_config=types.FunctionCallingConfig(
                    mode=types.FunctionCallingConfigMode.ANY, allowed_function_names=["lookup"]
                )
            ),
        ),
    )
    assert response.function_calls is not None
    (call,) = response.function_calls
    assert call.name == "lookup"
    assert Address.model_validate(call.args) == Address(city="where is it", zip_code=3)


async def test_max_output_tokens_cuts_the_reply_with_max_tokens_finish_reason(
    gemini_client: AsyncClient,
) -> None:
    response = await gemini_client.models.generate_content(
        model=MODEL,
        contents="a b c d",
        config=types.GenerateContentConfig(max_output_tokens=2),
    )
    assert response.text == "echo: a"
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS


async def test_stream_chunks_add_up_to_the_reply(
    gemini_client: AsyncClient, fake_server: FakeProviderServer
) -> None:
    stream = await gemini_client.models.generate_content_stream(
        model=MODEL, contents="stream me please"
    )
    chunks = [chunk async for chunk in stream]
    assert len(chunks) > 1
    assert "".join(chunk.text or "" for chunk in chunks) == "echo: stream me please"
    assert chunks[-1].candidates is not None
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata is not None
    assert chunks[-1].usage_metadata.candidates_token_count == 4
    assert fake_server.stats.realtime_paths == [f"/v1/models/{MODEL}:streamGenerateContent"]


async def test_embed_content_returns_deterministic_vectors_of_the_requested_size(
    gemini_client: AsyncClient, fake_server: FakeProviderServer
) -> None:
    sized = await gemini_client.models.embed_content(
        model="text-embedding-004",
        contents=["alpha", "beta"],
        config=types.EmbedContentConfig(output_dimensionality=4),
    )
    assert sized.embeddings is not None
    assert [e.values for e in sized.embeddings] == [
        embedding_vector("alpha", 4),
        embedding_vector("beta", 4),
    ]
    default = await gemini_client.models.embed_content(model="text-embedding-004", contents="x")
    assert default.embeddings is not None
    assert default.embeddings[0].values is not None
    assert len(default.embeddings[0].values) == 8
    path = "/v1/models/text-embedding-004:batchEmbedContents"
    assert fake_server.stats.realtime_paths == [path, path]


async def test_single_embed_content_route_answers_one_embedding(
    fake_server: FakeProviderServer,
) -> None:
    async with httpx2.AsyncClient(base_url=fake_server.gemini_base_url) as http:
        answer = await http.post(
            "/v1beta/models/text-embedding-004:embedContent",
            json={"content": {"parts": [{"text": "alpha"}]}, "outputDimensionality": 3},
            headers={"x-goog-api-key": "k"},
        )
    assert answer.status_code == 200
    assert answer.json() == {"embedding": {"values": embedding_vector("alpha", 3)}}


async def test_v1beta_api_version_is_served_too(fake_server: FakeProviderServer) -> None:
    async with gemini_client_for(fake_server, api_version="v1beta") as client:
        response = await client.models.generate_content(model=MODEL, contents="beta")
    assert response.text == "echo: beta"
    assert fake_server.stats.realtime_paths == [f"/v1beta/models/{MODEL}:generateContent"]


async def test_count_tokens_counts_words(gemini_client: AsyncClient) -> None:
    counted = await gemini_client.models.count_tokens(model=MODEL, contents="one two three")
    assert counted.total_tokens == 3


@pytest.mark.parametrize(
    ("status", "error_class", "status_name"),
    [
        (400, errors.ClientError, "INVALID_ARGUMENT"),
        (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
        (500, errors.ServerError, "INTERNAL"),
        (503, errors.ServerError, "UNAVAILABLE"),
    ],
)
async def test_failure_marker_answers_that_http_status_with_a_google_error(
    gemini_client: AsyncClient,
    fake_server: FakeProviderServer,
    status: int,
    error_class: type[errors.APIError],
    status_name: str,
) -> None:
    with pytest.raises(error_class) as caught:
        await gemini_client.models.generate_content(model=MODEL, contents=f"[[fail:{status}]]")
    assert (caught.value.code, caught.value.status) == (status, status_name)
    assert caught.value.message == f"Injected failure {status} for this request."
    assert fake_server.stats.realtime_calls == 1


async def test_missing_api_key_is_permission_denied_and_the_key_query_works(
    fake_server: FakeProviderServer,
) -> None:
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    path = f"/v1beta/models/{MODEL}:generateContent"
    async with httpx2.AsyncClient(base_url=fake_server.gemini_base_url) as http:
        missing = await http.post(path, json=body)
        by_query = await http.post(path, json=body, params={"key": "k"})
    assert missing.status_code == 403
    assert missing.json()["error"]["status"] == "PERMISSION_DENIED"
    assert missing.json()["error"]["code"] == 403
    assert by_query.status_code == 200


async def test_request_without_contents_is_invalid_argument(
    fake_server: FakeProviderServer,
) -> None:
    async with httpx2.AsyncClient(base_url=fake_server.gemini_base_url) as http:
        answer = await http.post(
            f"/v1/models/{MODEL}:generateContent", json={}, headers={"x-goog-api-key": "k"}
        )
    assert answer.status_code == 400
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"


async def test_fail_next_is_retried_when_the_client_has_retry_options(
    fake_server: FakeProviderServer,
) -> None:
    fake_server.fail_next("POST /v1/models/{model}:generateContent", 503)
    async with gemini_client_for(fake_server, retry_options=fast_retries()) as client:
        response = await client.models.generate_content(model=MODEL, contents="retry")
    assert response.text == "echo: retry"
    assert fake_server.stats.provider("gemini").realtime_calls == 2


async def test_fail_next_surfaces_without_retry_options(
    gemini_client: AsyncClient, fake_server: FakeProviderServer
) -> None:
    fake_server.fail_next("POST /v1/models/{model}:generateContent", 429)
    with pytest.raises(errors.ClientError) as caught:
        await gemini_client.models.generate_content(model=MODEL, contents="x")
    assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert (await gemini_client.models.generate_content(model=MODEL, contents="y")).text


async def test_drop_next_raises_a_transport_error_then_the_server_answers_again(
    gemini_client: AsyncClient, fake_server: FakeProviderServer
) -> None:
    fake_server.drop_next("POST /v1/models/{model}:generateContent")
    with pytest.raises(httpx2.TransportError):
        await gemini_client.models.generate_content(model=MODEL, contents="x")
    response = await gemini_client.models.generate_content(model=MODEL, contents="again")
    assert response.text == "echo: again"
    assert fake_server.pending_faults == 0
