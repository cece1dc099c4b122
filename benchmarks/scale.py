"""Scale, end to end: N calls gathered inside `batchify()` vs a hand-written batch script.

Each run happens in a fresh process (``python -m benchmarks.scale ...``) against a fake provider
server running in another process, and prints one JSON line: wall time, the worker's CPU time,
peak RSS, and when the last caller got its result (for the latency benchmark).

Modes:

- ``batchling``: ``asyncio.gather`` of N ordinary SDK calls inside ``async with batchify(...)``.
- ``floor``: the same N requests sent by a minimal script using the SDK's own batch methods:
  build the JSONL (or the request list), upload, create, poll, download, parse every line into
  the SDK's typed object. It splits at the provider's request limit like batchling does and runs
  the jobs concurrently. No custom ids by digest, no journal, no per-call futures: the floor.
- ``caller-floor`` (OpenAI only): the floor's work shaped the way calling code is, as any
  transparent layer must take it: N gathered coroutines, each handing its request to a minimal
  batching routine and awaiting a future; the routine does the floor's batch workflow and
  resolves the futures; each coroutine validates its own answer. No journal, no SDK call path,
  no custom ids by digest: what the calling code's own shape costs.

Both modes import the same modules (all three SDKs and batchling) before the baseline RSS is
taken, so that peak memory compares the work, not the imports.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

PROMPT = "Write a one-line product title for item #{i}: a linen curtain, {cm} cm, colour {c}."
COLOURS = ("ivory", "sage", "slate", "terracotta", "sand", "indigo", "ochre")
OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
GEMINI_MODEL = "gemini-2.5-flash"
MAX_TOKENS = 64

OPENAI_LIMIT = 50_000
ANTHROPIC_LIMIT = 100_000
GEMINI_LIMIT = 100_000  # and 20 MB inline, which 20,000 small requests stay under
TERMINAL_OPENAI = {"completed", "failed", "expired", "cancelled"}


PAD = 0
"""Characters of filler appended to every prompt (`--pad`), to reach the providers' byte limits."""
EMBEDDING_INPUTS = 0
"""OpenAI only (`--embedding-inputs`): each call is an `embeddings.create` of this many texts, to
pass OpenAI's 50,000 embedding inputs per job before its 50,000 requests."""
EMBEDDING_MODEL = "text-embedding-3-small"


def prompt(i: int) -> str:
    text = PROMPT.format(i=i, cm=100 + i % 300, c=COLOURS[i % len(COLOURS)])
    return text + " Context: " + "lorem ipsum " * (PAD // 12) if PAD else text


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- clients ----------------------------------------------------------------------------------


def openai_client(url: str) -> Any:
    import openai

    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=2)


def anthropic_client(url: str) -> Any:
    import anthropic

    return anthropic.AsyncAnthropic(base_url=url, api_key="bench", max_retries=2)


def gemini_client(url: str) -> Any:
    from google import genai
    from google.genai import types

    return genai.Client(api_key="bench", http_options=types.HttpOptions(base_url=url))


async def close_client(provider: str, client: Any) -> None:
    if provider == "gemini":
        await client.aio.aclose()
        client.close()
    else:
        await client.close()


CLIENTS: dict[str, Callable[[str], Any]] = {
    "openai": openai_client,
    "anthropic": anthropic_client,
    "gemini": gemini_client,
}


# -- one real-time-style call, as user code writes it -----------------------------------------


def sdk_call(provider: str, client: Any) -> Callable[[int], Awaitable[Any]]:
    if provider == "openai" and EMBEDDING_INPUTS:

        def call(i: int) -> Awaitable[Any]:
            texts = [f"{prompt(i)} part {k}" for k in range(EMBEDDING_INPUTS)]
            return client.embeddings.create(model=EMBEDDING_MODEL, input=texts)

    elif provider == "openai":

        def call(i: int) -> Awaitable[Any]:
            return client.chat.completions.create(
                model=OPENAI_MODEL,
                messages=[{"role": "user", "content": prompt(i)}],
                max_tokens=MAX_TOKENS,
            )

    elif provider == "anthropic":

        def call(i: int) -> Awaitable[Any]:
            return client.messages.create(
                model=ANTHROPIC_MODEL,
                messages=[{"role": "user", "content": prompt(i)}],
                max_tokens=MAX_TOKENS,
            )

    else:

        def call(i: int) -> Awaitable[Any]:
            return client.aio.models.generate_content(model=GEMINI_MODEL, contents=prompt(i))

    return call


def check(provider: str, i: int, result: Any) -> None:
    """Spot-check that caller i got its own answer (the fake echoes the prompt)."""
    if provider == "openai" and EMBEDDING_INPUTS:
        if len(result.data) != EMBEDDING_INPUTS:
            raise AssertionError(f"caller {i} got {len(result.data)} embeddings")
        return
    if provider == "openai":
        text = result.choices[0].message.content or ""
    elif provider == "anthropic":
        text = result.content[0].text
    else:
        text = result.text or ""
    if f"#{i}:" not in text:
        raise AssertionError(f"caller {i} got someone else's answer: {text[:120]!r}")


# -- batchling ---------------------------------------------------------------------------------


async def run_batchling(provider: str, client: Any, n: int, options: dict[str, Any]) -> list[Any]:
    from batchling import batchify

    call = sdk_call(provider, client)
    last = [0.0]

    async def one(i: int) -> Any:
        result = await call(i)
        last[0] = time.monotonic()
        return result

    async with batchify(**options) as ctx:
        results = await asyncio.gather(*(one(i) for i in range(n)))
    options["_last_resume_monotonic"] = last[0]
    options["_batch_ids"] = len(ctx.report.batch_ids)
    return results


# -- the floor: the batch workflow written by hand with the SDK --------------------------------


async def _sleep_poll(poll: float) -> None:
    await asyncio.sleep(poll)


async def floor_openai(client: Any, n: int, poll: float) -> list[Any]:
    from openai.types.chat import ChatCompletion

    async def job(start: int, stop: int) -> list[Any]:
        lines = []
        for i in range(start, stop):
            body = {
                "model": OPENAI_MODEL,
                "messages": [{"role": "user", "content": prompt(i)}],
                "max_tokens": MAX_TOKENS,
            }
            line = {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions"}
            line["body"] = body
            lines.append(json.dumps(line, separators=(",", ":")))
        data = ("\n".join(lines) + "\n").encode()
        del lines
        uploaded = await client.files.create(file=("input.jsonl", data), purpose="batch")
        del data
        batch = await client.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
        )
        while batch.status not in TERMINAL_OPENAI:
            await _sleep_poll(poll)
            batch = await client.batches.retrieve(batch.id)
        content = await client.files.content(batch.output_file_id)
        out: list[Any] = [None] * (stop - start)
        for raw in content.content.splitlines():
            line = json.loads(raw)
            index = int(line["custom_id"][1:]) - start
            out[index] = ChatCompletion.model_validate(line["response"]["body"])
        return out

    chunks = [(s, min(s + OPENAI_LIMIT, n)) for s in range(0, n, OPENAI_LIMIT)]
    parts = await asyncio.gather(*(job(s, e) for s, e in chunks))
    return [item for part in parts for item in part]


async def floor_anthropic(client: Any, n: int, poll: float) -> list[Any]:
    async def job(start: int, stop: int) -> list[Any]:
        requests = [
            {
                "custom_id": f"r{i}",
                "params": {
                    "model": ANTHROPIC_MODEL,
                    "messages": [{"role": "user", "content": prompt(i)}],
                    "max_tokens": MAX_TOKENS,
                },
            }
            for i in range(start, stop)
        ]
        batch = await client.messages.batches.create(requests=requests)
        del requests
        while batch.processing_status != "ended":
            await _sleep_poll(poll)
            batch = await client.messages.batches.retrieve(batch.id)
        out: list[Any] = [None] * (stop - start)
        async for item in await client.messages.batches.results(batch.id):
            out[int(item.custom_id[1:]) - start] = item.result.message
        return out

    chunks = [(s, min(s + ANTHROPIC_LIMIT, n)) for s in range(0, n, ANTHROPIC_LIMIT)]
    parts = await asyncio.gather(*(job(s, e) for s, e in chunks))
    return [item for part in parts for item in part]


async def floor_gemini(client: Any, n: int, poll: float) -> list[Any]:
    done = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}

    async def job(start: int, stop: int) -> list[Any]:
        src = [
            {"contents": [{"role": "user", "parts": [{"text": prompt(i)}]}]}
            for i in range(start, stop)
        ]
        batch = await client.aio.batches.create(model=GEMINI_MODEL, src=src)
        del src
        while str(getattr(batch.state, "name", batch.state)) not in done:
            await _sleep_poll(poll)
            batch = await client.aio.batches.get(name=batch.name)
        return [item.response for item in batch.dest.inlined_responses]

    chunks = [(s, min(s + GEMINI_LIMIT, n)) for s in range(0, n, GEMINI_LIMIT)]
    parts = await asyncio.gather(*(job(s, e) for s, e in chunks))
    return [item for part in parts for item in part]


async def caller_floor_openai(client: Any, n: int, poll: float) -> list[Any]:
    from openai.types.chat import ChatCompletion

    loop = asyncio.get_running_loop()
    waiting: dict[str, tuple[dict[str, Any], asyncio.Future[Any]]] = {}

    async def job(items: list[tuple[str, tuple[dict[str, Any], asyncio.Future[Any]]]]) -> None:
        lines = [
            json.dumps(
                {"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": body},
                separators=(",", ":"),
            )
            for key, (body, _) in items
        ]
        data = ("\n".join(lines) + "\n").encode()
        del lines
        uploaded = await client.files.create(file=("input.jsonl", data), purpose="batch")
        del data
        batch = await client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        while batch.status not in TERMINAL_OPENAI:
            await _sleep_poll(poll)
            batch = await client.batches.retrieve(batch.id)
        content = await client.files.content(batch.output_file_id)
        futures = {key: future for key, (_, future) in items}
        for raw in content.content.splitlines():
            line = json.loads(raw)
            futures[line["custom_id"]].set_result(line["response"]["body"])

    async def flush() -> None:
        items = list(waiting.items())
        waiting.clear()
        chunks = [items[s : s + OPENAI_LIMIT] for s in range(0, len(items), OPENAI_LIMIT)]
        await asyncio.gather(*(job(chunk) for chunk in chunks))

    async def call(i: int) -> Any:
        body = {
            "model": OPENAI_MODEL,
            "messages": [{"role": "user", "content": prompt(i)}],
            "max_tokens": MAX_TOKENS,
        }
        future = loop.create_future()
        if not waiting:
            loop.call_soon(lambda: flushing.append(asyncio.ensure_future(flush())))
        waiting[f"r{i}"] = (body, future)
        return ChatCompletion.model_validate(await future)

    flushing: list[asyncio.Future[None]] = []
    results = await asyncio.gather(*(call(i) for i in range(n)))
    await asyncio.gather(*flushing)
    return results


FLOORS = {"openai": floor_openai, "anthropic": floor_anthropic, "gemini": floor_gemini}


# -- the worker --------------------------------------------------------------------------------


def _time_in_gc() -> Callable[[], float]:
    """Start timing the garbage collector's passes; the returned function reads the total."""
    spent = [0.0, 0.0]

    def on_pass(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            spent[1] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - spent[1]

    gc.callbacks.append(on_pass)
    return lambda: spent[0]


def _import_everything() -> None:
    # Same imports in every mode: the baseline RSS then differs only by the work done.
    import anthropic  # noqa: F401
    import openai  # noqa: F401
    from google import genai  # noqa: F401
    from openai.types.chat import ChatCompletion  # noqa: F401

    import batchling.plugins

    batchling.plugins.get_providers()


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    client = CLIENTS[args.provider](args.url)
    options: dict[str, Any] = {}
    gc.collect()
    baseline_rss = current_rss_mb()
    gc_seconds = _time_in_gc()
    cpu0 = cpu_seconds()
    start_monotonic = time.monotonic()
    start = time.perf_counter()
    if args.mode == "batchling":
        options = {
            "batch_window_seconds": args.window,
            "poll_interval_seconds": args.poll,
            "progress": False,
            "cache": args.cache if args.cache != "off" else False,
            "batch_size": args.batch_size,
        }
        results = await run_batchling(args.provider, client, args.n, options)
    elif args.mode == "caller-floor":
        results = await caller_floor_openai(client, args.n, args.poll)
        options["_last_resume_monotonic"] = time.monotonic()
    else:
        results = await FLOORS[args.provider](client, args.n, args.poll)
        options["_last_resume_monotonic"] = time.monotonic()
    wall = time.perf_counter() - start
    cpu = cpu_seconds() - cpu0
    gc_s = gc_seconds()
    if len(results) != args.n:
        raise AssertionError(f"{len(results)} results for {args.n} calls")
    for i in sorted({0, args.n // 3, args.n // 2, args.n - 1}):
        check(args.provider, i, results[i])
    await close_client(args.provider, client)
    return {
        "provider": args.provider,
        "mode": args.mode,
        "n": args.n,
        "wall_s": wall,
        "cpu_s": cpu,
        "gc_s": gc_s,
        "peak_rss_mb": peak_rss_mb(),
        "baseline_rss_mb": baseline_rss,
        "start_monotonic": start_monotonic,
        "last_resume_monotonic": options.get("_last_resume_monotonic"),
        "batch_ids": options.get("_batch_ids"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale")
    parser.add_argument("--provider", choices=sorted(CLIENTS), required=True)
    parser.add_argument("--mode", choices=("batchling", "floor", "caller-floor"), required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--url", required=True, help="fake provider server, http://127.0.0.1:PORT")
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--window", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument("--cache", default="", help="journal directory; 'off' for cache=False")
    parser.add_argument("--profile", default="", help="write a pyinstrument session here")
    parser.add_argument("--profile-interval", type=float, default=0.002)
    parser.add_argument(
        "--no-gc",
        action="store_true",
        help="turn the garbage collector off (for the profile: its passes are charged to "
        "whichever function allocated last)",
    )
    parser.add_argument("--pad", type=int, default=0, help="filler characters per prompt")
    parser.add_argument(
        "--embedding-inputs", type=int, default=0, help="openai: embed this many texts per call"
    )
    args = parser.parse_args(argv)
    global PAD, EMBEDDING_INPUTS
    PAD = args.pad
    EMBEDDING_INPUTS = args.embedding_inputs
    if EMBEDDING_INPUTS and (args.provider != "openai" or args.mode != "batchling"):
        parser.error("--embedding-inputs is for --provider openai --mode batchling")
    _import_everything()
    if args.no_gc:
        gc.disable()
    with tempfile.TemporaryDirectory(prefix="batchling-bench-") as tmp:
        if not args.cache:
            args.cache = tmp
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=args.profile_interval, async_mode="disabled")
            profiler.start()
            result = asyncio.run(_main(args))
            profiler.stop()
            profiler.last_session.save(args.profile)
        else:
            result = asyncio.run(_main(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
