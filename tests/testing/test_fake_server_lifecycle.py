"""Starting, stopping, routing basics and statistics of the fake provider server."""

from __future__ import annotations

import threading

import httpx2
import openai
import pytest

from batchling.testing import FakeProviderServer

from .support import chat_body


def test_start_and_stop_are_idempotent_and_the_server_can_restart() -> None:
    server = FakeProviderServer()
    with pytest.raises(RuntimeError):
        _ = server.url
    assert server.start() is server
    first_url = server.url
    server.start()
    assert server.url == first_url
    assert server.openai_base_url == first_url + "/v1"
    assert first_url.startswith("http://127.0.0.1:")
    server.stop()
    server.stop()
    assert not server.running
    with server as again:
        assert again.port > 0
    assert not server.running


def test_sync_client_works_against_the_server() -> None:
    with (
        FakeProviderServer() as server,
        openai.OpenAI(base_url=server.openai_base_url, api_key="k") as client,
    ):
        completion = client.chat.completions.create(**chat_body("sync hello"))
    assert completion.choices[0].message.content == "echo: sync hello"


def test_stop_closes_connections_a_client_keeps_alive() -> None:
    server = FakeProviderServer().start()
    with httpx2.Client(
        base_url=server.openai_base_url, headers={"Authorization": "Bearer k"}
    ) as http:
        assert http.get("/batches").status_code == 200
        server.stop()
        with pytest.raises(httpx2.TransportError):
            http.get("/batches")
    assert not [t for t in threading.enumerate() if t.name.startswith("FakeProvider")]


async def test_async_context_manager_starts_and_stops() -> None:
    async with FakeProviderServer() as server:
        assert server.running
    assert not server.running


async def test_unknown_routes_answer_openai_shaped_404_and_405(
    fake_server: FakeProviderServer,
) -> None:
    async with httpx2.AsyncClient(
        base_url=fake_server.url, headers={"Authorization": "Bearer k"}
    ) as http:
        missing = await http.get("/v1/nothing")
        wrong_method = await http.delete("/v1/batches")
    assert missing.status_code == 404
    assert wrong_method.status_code == 405
    assert set(missing.json()["error"]) == {"message", "type", "param", "code"}


async def test_stats_count_requests_and_reset_clears_them(
    openai_client: openai.AsyncOpenAI, fake_server: FakeProviderServer
) -> None:
    await openai_client.embeddings.create(model="m", input="x")
    await openai_client.moderations.create(input="x")
    stats = fake_server.stats
    assert stats.realtime_paths == ["/v1/embeddings", "/v1/moderations"]
    assert stats.requests == ["POST /v1/embeddings", "POST /v1/moderations"]
    assert len(fake_server.received_bodies) == 2
    fake_server.reset()
    assert (stats.realtime_calls, stats.requests, fake_server.received_bodies) == (0, [], [])


def test_fault_configuration_is_validated() -> None:
    server = FakeProviderServer()
    with pytest.raises(ValueError, match="route"):
        server.fail_next("/v1/batches", 500)
    with pytest.raises(ValueError, match="status"):
        server.fail_next("GET /v1/batches", 200)
    with pytest.raises(ValueError, match="times"):
        server.drop_next("GET /v1/batches", times=0)
    with pytest.raises(ValueError, match="outcome"):
        server.set_batch_outcome("exploded")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="completed_fraction"):
        server.set_batch_outcome("expired", completed_fraction=1.5)
