"""`batchling demo`: the product example, offline, on the bundled fake provider server.

A few hundred calls across `openai.AsyncOpenAI`, `anthropic.AsyncAnthropic` and
`google.genai.Client`, all pointed at `batchling.testing.FakeProviderServer` on loopback with
made-up keys, run inside `batchify()`: each provider's calls become one batch job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import sys
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from batchling.api import batchify
from batchling.report import RunReport
from batchling.testing import FakeProviderServer

DEFAULT_REQUESTS = 300
FAKE_BATCH_SECONDS = 2.0
"""How long the fake provider keeps each job running, so there is progress to watch."""
BATCH_WINDOW_SECONDS = 0.5
POLL_INTERVAL_SECONDS = 0.5
"""Short windows and polls: the fake provider answers in seconds, not hours."""
SHOWN_RESULTS = 3
DEMO_KEY = "demo-key-not-a-secret"
SYSTEM_PROMPT = "Write a one-line prompt for a product photo."


class DemoUnavailableError(RuntimeError):
    """None of the SDKs the demo uses is installed."""


@dataclasses.dataclass(frozen=True, slots=True)
class DemoProvider:
    """How the demo calls one provider's SDK."""

    name: str
    sdk: str
    connect: Callable[[FakeProviderServer], Any]
    ask: Callable[[Any, str], Awaitable[str]]
    close: Callable[[Any], Awaitable[None]]


@dataclasses.dataclass(frozen=True, slots=True)
class DemoReply:
    """One product and the reply its call got."""

    provider: str
    product: str
    text: str


def _connect_openai(server: FakeProviderServer) -> Any:
    import openai

    return openai.AsyncOpenAI(base_url=server.openai_base_url, api_key=DEMO_KEY)


async def _ask_openai(client: Any, product: str) -> str:
    reply = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": product},
        ],
    )
    return str(reply.choices[0].message.content or "")


def _connect_anthropic(server: FakeProviderServer) -> Any:
    import anthropic

    return anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key=DEMO_KEY)


async def _ask_anthropic(client: Any, product: str) -> str:
    reply = await client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=200,
        system=SYSTEM_PROMPT,
        messages=[{"role": "user", "content": product}],
    )
    return str(reply.content[0].text)


def _connect_gemini(server: FakeProviderServer) -> Any:
    from google import genai
    from google.genai import types

    return genai.Client(
        api_key=DEMO_KEY, http_options=types.HttpOptions(base_url=server.gemini_base_url)
    )


async def _ask_gemini(client: Any, product: str) -> str:
    from google.genai import types

    reply = await client.aio.models.generate_content(
        model="gemini-2.5-flash",
        contents=product,
        config=types.GenerateContentConfig(system_instruction=SYSTEM_PROMPT),
    )
    return str(reply.text or "")


async def _close_async_client(client: Any) -> None:
    await client.close()


async def _close_gemini(client: Any) -> None:
    await client.aio.aclose()
    client.close()


PROVIDERS = (
    DemoProvider("openai", "openai", _connect_openai, _ask_openai, _close_async_client),
    DemoProvider("anthropic", "anthropic", _connect_anthropic, _ask_anthropic, _close_async_client),
    DemoProvider("gemini", "google.genai", _connect_gemini, _ask_gemini, _close_gemini),
)


def installed_providers() -> list[DemoProvider]:
    """The demo's providers whose SDK is installed."""
    return [provider for provider in PROVIDERS if _installed(provider.sdk)]


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def products(count: int) -> list[str]:
    """The new products the example writes photo prompts for."""
    return [f"hand-made oak chair, model {number}" for number in range(1, count + 1)]


def run_demo(
    requests: int = DEFAULT_REQUESTS, *, progress: bool | None = None, out: TextIO | None = None
) -> RunReport:
    """Run the example against a fake provider started for it, and print a few results and
    what crossed the wire to `out` (stdout); progress and the summary go to stderr."""
    stream = out if out is not None else sys.stdout
    providers = installed_providers()
    if not providers:
        raise DemoUnavailableError(
            "batchling demo needs at least one of the openai, anthropic and google-genai SDKs: "
            "pip install 'batchling[all]'."
        )
    names = ", ".join(provider.name for provider in providers)
    print(
        f"batchling demo: photo prompts for {requests:,} new products, asked through {names} "
        "clients of a local fake provider (no API key, no network).",
        file=stream,
        flush=True,
    )
    with (
        tempfile.TemporaryDirectory(prefix="batchling-demo-") as cache,
        FakeProviderServer(batch_delay_seconds=FAKE_BATCH_SECONDS) as server,
    ):
        replies, report = asyncio.run(_main(server, providers, requests, progress, cache))
        jobs = [f"{record.provider} {record.id}" for record in server.batches]
        realtime_calls = server.stats.realtime_calls
    if progress is False:
        # With progress on, batchify() prints the summary itself.
        from batchling.display import print_run_summary

        print_run_summary(report)
    for reply in replies[:SHOWN_RESULTS]:
        print(f"  {reply.provider:<10} {reply.product}  ->  {reply.text}", file=stream)
    print(
        f"{len(replies):,} results from {len(jobs)} batch job{'' if len(jobs) == 1 else 's'} "
        f"({', '.join(jobs)}); real-time calls: {realtime_calls}.",
        file=stream,
    )
    return report


async def _main(
    server: FakeProviderServer,
    providers: list[DemoProvider],
    requests: int,
    progress: bool | None,
    cache: str,
) -> tuple[list[DemoReply], RunReport]:
    clients = [provider.connect(server) for provider in providers]
    try:
        calls = []
        for index, product in enumerate(products(requests)):
            slot = index % len(providers)
            calls.append(_reply(providers[slot], clients[slot], product))
        async with batchify(
            progress=progress,
            cache=cache,
            batch_window_seconds=BATCH_WINDOW_SECONDS,
            poll_interval_seconds=POLL_INTERVAL_SECONDS,
        ) as context:
            replies = await asyncio.gather(*calls)
        return list(replies), context.report
    finally:
        for provider, client in zip(providers, clients, strict=True):
            await provider.close(client)


async def _reply(provider: DemoProvider, client: Any, product: str) -> DemoReply:
    return DemoReply(provider.name, product, await provider.ask(client, product))
