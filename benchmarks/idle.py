"""Idle overhead: an SDK call outside `batchify()` with batchling's wrappers installed vs not.

The SDK clients talk to an in-process `httpx2.MockTransport`, so a call costs what the SDK
itself costs (building the request, parsing the response) and no network noise hides a
difference. Blocks of calls alternate between installed and uninstalled wrappers
(`batchling.patching.install(...)` / `uninstall()`), in the same process, many times; the
overhead is the median over block pairs of (installed - uninstalled) / uninstalled, in CPU time
of the calling thread (wall time on a shared machine measures the neighbours).

A second, finer measure times only what the wrapper adds: creating the SDK's `request(...)`
coroutine (the wrapped method) without running it, installed vs uninstalled.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2

from batchling import patching, plugins

CHAT_COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "A sage linen curtain, 120 cm."},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30},
}
ANTHROPIC_MESSAGE = {
    "id": "msg_bench",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "content": [{"type": "text", "text": "A sage linen curtain, 120 cm."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 21, "output_tokens": 9},
}
GEMINI_RESPONSE = {
    "candidates": [
        {
            "content": {"role": "model", "parts": [{"text": "A sage linen curtain, 120 cm."}]},
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {"promptTokenCount": 21, "candidatesTokenCount": 9, "totalTokenCount": 30},
    "modelVersion": "gemini-2.5-flash",
}


def _transport(body: dict[str, Any]) -> httpx2.MockTransport:
    content = json.dumps(body).encode()

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=content, headers={"content-type": "application/json"})

    return httpx2.MockTransport(handler)


def make_calls() -> dict[str, Callable[[], Awaitable[Any]]]:
    """One awaitable-returning callable per SDK, each over an in-process transport."""
    import anthropic
    import openai
    from google import genai
    from google.genai import types

    oa = openai.AsyncOpenAI(
        api_key="bench",
        base_url="http://openai.invalid/v1",
        http_client=httpx2.AsyncClient(transport=_transport(CHAT_COMPLETION)),
    )
    an = anthropic.AsyncAnthropic(
        api_key="bench",
        base_url="http://anthropic.invalid",
        http_client=httpx2.AsyncClient(transport=_transport(ANTHROPIC_MESSAGE)),
    )
    ge = genai.Client(
        api_key="bench",
        http_options=types.HttpOptions(
            base_url="http://gemini.invalid",
            httpx_async_client=httpx2.AsyncClient(transport=_transport(GEMINI_RESPONSE)),
        ),
    )
    messages = [{"role": "user", "content": "Title for a sage linen curtain, 120 cm."}]

    def call_openai() -> Awaitable[Any]:
        return oa.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=64)

    def call_anthropic() -> Awaitable[Any]:
        return an.messages.create(model="claude-haiku-4-5", messages=messages, max_tokens=64)

    def call_gemini() -> Awaitable[Any]:
        return ge.aio.models.generate_content(
            model="gemini-2.5-flash", contents="Title for a sage linen curtain, 120 cm."
        )

    return {"openai": call_openai, "anthropic": call_anthropic, "gemini": call_gemini}


def _install() -> None:
    patching.install(plugins.get_providers().values())


async def _block(call: Callable[[], Awaitable[Any]], size: int) -> float:
    # CPU time of this thread, not wall time: on a shared machine other processes' work
    # would otherwise dominate the differences. Each call runs entirely in this thread
    # (the transport is in-process), so its CPU time is its cost.
    start = time.thread_time()
    for _ in range(size):
        await call()
    return (time.thread_time() - start) / size


def median_ci(values: list[float]) -> tuple[float, float]:
    """A distribution-free 95 % confidence interval of the median (binomial order statistics)."""
    ordered = sorted(values)
    n = len(ordered)
    half_width = 1.96 * math.sqrt(n) / 2
    low = max(0, math.floor(n / 2 - half_width))
    high = min(n - 1, math.ceil(n / 2 + half_width))
    return ordered[low], ordered[high]


async def measure_calls(rounds: int, block: int) -> dict[str, dict[str, float]]:
    calls = make_calls()
    results: dict[str, dict[str, float]] = {}
    for name, call in calls.items():
        # Warm up both states (imports, caches of the SDK's transform, connection objects).
        for state in (_install, patching.uninstall):
            state()
            await _block(call, block)
        on: list[float] = []
        off: list[float] = []
        relative: list[float] = []
        gc.collect()
        gc.disable()
        try:
            for index in range(rounds):
                # Alternate which state goes first so that drift does not favour either.
                order = (True, False) if index % 2 == 0 else (False, True)
                pair: dict[bool, float] = {}
                for installed in order:
                    _install() if installed else patching.uninstall()
                    pair[installed] = await _block(call, block)
                on.append(pair[True])
                off.append(pair[False])
                relative.append((pair[True] - pair[False]) / pair[False])
                if index % 20 == 19:
                    gc.collect()
        finally:
            gc.enable()
            patching.uninstall()
        low, high = median_ci(relative)
        results[name] = {
            "off_us": statistics.median(off) * 1e6,
            "on_us": statistics.median(on) * 1e6,
            "overhead_pct": statistics.median(relative) * 100,
            "overhead_ci_low_pct": low * 100,
            "overhead_ci_high_pct": high * 100,
            "pairs": rounds,
            "calls_per_state": rounds * block,
        }
    return results


def measure_wrapper(repeats: int = 200_000) -> dict[str, float]:
    """ns that calling the wrapped `AsyncAPIClient.request` adds, outside `batchify()`.

    Creating the coroutine runs the wrapper (which reads the ContextVar and calls through);
    the coroutine is closed unawaited, so nothing else is timed.
    """
    import openai
    from openai._models import FinalRequestOptions

    client = openai.AsyncOpenAI(api_key="bench", base_url="http://openai.invalid/v1")
    options = FinalRequestOptions.construct(method="post", url="/chat/completions")

    def once() -> float:
        start = time.thread_time_ns()
        for _ in range(repeats):
            client.request(object, options).close()
        return (time.thread_time_ns() - start) / repeats

    samples_on: list[float] = []
    samples_off: list[float] = []
    for _ in range(7):
        _install()
        samples_on.append(once())
        patching.uninstall()
        samples_off.append(once())
    on, off = statistics.median(samples_on), statistics.median(samples_off)
    return {"on_ns": on, "off_ns": off, "added_ns": on - off}


def run(quick: bool = False) -> dict[str, Any]:
    rounds, block = (60, 20) if quick else (300, 25)
    calls = asyncio.run(measure_calls(rounds, block))
    wrapper = measure_wrapper(50_000 if quick else 200_000)
    return {"calls": calls, "wrapper": wrapper}


if __name__ == "__main__":
    print(json.dumps(run(quick=True), indent=2))
