"""OpenAI-compatible hosts (Groq, xAI, Azure OpenAI, declared hosts) through the `openai` SDK."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletion

import batchling
from batchling import journal
from batchling.providers import openai_compatible
from batchling.testing import FakeProviderServer
from tests.conftest import fast_batchify, journaled_submission


@pytest.fixture
def declared(fake_server: FakeProviderServer) -> Iterator[None]:
    """The built-in Groq and xAI profiles, pointed at the fake server's hosts."""
    hosts = [
        dataclasses.replace(openai_compatible.GROQ, base_urls=(fake_server.groq_base_url,)),
        dataclasses.replace(openai_compatible.XAI, base_urls=(fake_server.xai_base_url,)),
    ]
    for host in hosts:
        openai_compatible.register_openai_compatible_host(host)
    yield
    for host in hosts:
        openai_compatible.unregister_openai_compatible_host(host)


def ask(client: openai.AsyncOpenAI, text: str, model: str = "llama-3.3-70b-versatile"):  # type: ignore[no-untyped-def]
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


async def test_groq_batches_under_its_openai_v1_prefix(
    declared: None, fake_server: FakeProviderServer
) -> None:
    async with (
        openai.AsyncOpenAI(base_url=fake_server.groq_base_url, api_key="gsk-test") as client,
        fast_batchify(),
    ):
        replies = await asyncio.gather(*(ask(client, f"g{i}") for i in range(40)))
    assert [r.choices[0].message.content for r in replies] == [f"echo: g{i}" for i in range(40)]
    stats = fake_server.stats.provider("groq")
    assert stats.lines_per_batch == [40]
    assert fake_server.stats.realtime_calls == 0
    assert fake_server.batches[0].lines[0]["url"] == "/v1/chat/completions"


async def test_groq_passes_through_what_its_batch_api_does_not_serve(
    declared: None, fake_server: FakeProviderServer
) -> None:
    async with (
        openai.AsyncOpenAI(base_url=fake_server.groq_base_url, api_key="gsk-test") as client,
        fast_batchify() as ctx,
    ):
        with (
            pytest.warns(batchling.NotBatchedWarning, match="groq Batch API does not serve"),
            # Sent in real time, where the fake Groq host has no embeddings either.
            pytest.raises(openai.NotFoundError),
        ):
            await client.embeddings.create(model="nomic-embed", input="x")
    assert ctx.report.passed_through == {"endpoint /embeddings": 1}


async def test_groq_accepts_a_longer_completion_window(
    declared: None, fake_server: FakeProviderServer
) -> None:
    async with (
        openai.AsyncOpenAI(base_url=fake_server.groq_base_url, api_key="gsk-test") as client,
        fast_batchify(completion_window="7d"),
    ):
        reply = await ask(client, "slow is fine")
    assert reply.choices[0].message.content == "echo: slow is fine"


async def test_xai_batches_chat_completions(
    declared: None, fake_server: FakeProviderServer
) -> None:
    async with (
        openai.AsyncOpenAI(base_url=fake_server.xai_base_url, api_key="xai-test") as client,
        fast_batchify(),
    ):
        replies = await asyncio.gather(*(ask(client, f"x{i}", model="grok-4") for i in range(5)))
    assert all(type(r) is ChatCompletion for r in replies)
    assert fake_server.stats.provider("xai").lines_per_batch == [5]


async def test_azure_batches_with_deployment_names_and_unprefixed_urls(
    fake_server: FakeProviderServer,
) -> None:
    async with (
        openai.AsyncAzureOpenAI(
            azure_endpoint=fake_server.azure_endpoint, api_key="azure-key", api_version="2024-10-21"
        ) as client,
        fast_batchify(),
    ):
        replies = await asyncio.gather(
            *(ask(client, f"a{i}", model="my-gpt4o-deployment") for i in range(10))
        )
    assert [r.choices[0].message.content for r in replies] == [f"echo: a{i}" for i in range(10)]
    batch = fake_server.batches[0]
    assert batch.provider == "azure"
    assert batch.endpoint == "/chat/completions"
    assert {line["url"] for line in batch.lines} == {"/chat/completions"}
    assert batch.lines[0]["body"]["model"] == "my-gpt4o-deployment"
    assert fake_server.stats.realtime_calls == 0


async def test_an_azure_client_bound_to_a_deployment_names_it_in_its_lines(
    fake_server: FakeProviderServer,
) -> None:
    async with (
        openai.AsyncAzureOpenAI(
            azure_endpoint=fake_server.azure_endpoint,
            azure_deployment="my-gpt4o-batch",
            api_key="azure-key",
            api_version="2024-10-21",
        ) as client,
        fast_batchify(),
    ):
        # In real time the deployment comes from the client's URL, whatever `model` says.
        reply = await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "bound"}]
        )
    assert reply.choices[0].message.content == "echo: bound"
    (batch,) = fake_server.batches
    assert batch.lines[0]["body"]["model"] == "my-gpt4o-batch"
    assert batch.lines[0]["url"] == "/chat/completions"


def _azure_client(server: FakeProviderServer) -> openai.AsyncAzureOpenAI:
    return openai.AsyncAzureOpenAI(
        azure_endpoint=server.azure_endpoint, api_key="azure-key", api_version="2024-10-21"
    )


def _journaled(batch_id: str) -> journal.Submission:
    found = journaled_submission(batch_id)
    assert found is not None
    return found


async def test_an_azure_job_is_journaled_with_its_api_version(
    fake_server: FakeProviderServer,
) -> None:
    async with _azure_client(fake_server) as client, fast_batchify():
        await ask(client, "v", model="my-gpt4o-deployment")
    (batch,) = fake_server.batches
    assert _journaled(batch.id).info == {"azure_api_version": "2024-10-21"}


async def test_an_azure_job_found_again_after_a_crash_gets_its_api_version_journaled(
    fake_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first run "dies" right after the provider created the job, before its id was
    # journaled; the re-run finds the job by its tag, and must journal what `describe` keeps
    # (`batchling batches cancel` needs the API version to reach an Azure job).
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("crashed before the job id was journaled")

    with monkeypatch.context() as patch:
        patch.setattr(journal.Journal, "mark_submitted", crash)
        async with _azure_client(fake_server) as client, fast_batchify():
            with pytest.raises(RuntimeError, match="crashed"):
                await ask(client, "found again", model="my-gpt4o-deployment")
    async with _azure_client(fake_server) as client, fast_batchify():
        reply = await ask(client, "found again", model="my-gpt4o-deployment")
    assert reply.choices[0].message.content == "echo: found again"
    (batch,) = fake_server.batches
    assert _journaled(batch.id).info == {"azure_api_version": "2024-10-21"}


async def test_a_declared_host_uses_its_own_profile(fake_server: FakeProviderServer) -> None:
    gateway = openai_compatible.OpenAICompatibleHost(
        "my-gateway",
        base_urls=(fake_server.openai_base_url,),
        endpoints=frozenset({"/chat/completions"}),
        max_requests_per_batch=3,
    )
    openai_compatible.register_openai_compatible_host(gateway)
    try:
        async with (
            openai.AsyncOpenAI(base_url=fake_server.openai_base_url, api_key="k") as client,
            fast_batchify(),
        ):
            await asyncio.gather(*(ask(client, f"q{i}", model="m") for i in range(7)))
    finally:
        openai_compatible.unregister_openai_compatible_host(gateway)
    assert sorted(fake_server.stats.lines_per_batch) == [1, 3, 3]


def test_the_hosts_example_runs_offline() -> None:
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-W", "error", str(root / "examples" / "openai_compatible_hosts.py")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root / "src")},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for host in ("groq", "xai", "azure", "together"):
        assert f"echo: {host} 0" in result.stdout
        assert f"{host}: 1 batch job(s), [20] lines" in result.stdout
    assert "real-time calls: 0" in result.stdout
