"""Run the PyPI reference implementation (`batchling==0.1.0a3`) against the fake server.

Executed by the interpreter of a separate virtual environment (see `benchmarks.reference`),
never by the project's own: it imports the *reference* `batchling`, so it must not import
anything from this repository.

0.1.0a3 hooks `httpx.AsyncClient.send` and `aiohttp.ClientSession._request` and recognises a
provider by the request's hostname (`api.openai.com`, ...). So the SDK clients keep their
default base URLs, and everything that reaches the network (only the reference's own Batch API
calls: its hooks answer the SDK calls) is redirected to the fake server on 127.0.0.1 by a shim
on `httpx.AsyncHTTPTransport`. A guard on `socket.getaddrinfo` refuses every other host, so
no traffic leaves the machine whatever the code under test does.

Prints one JSON line like `benchmarks.scale`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import sys
import time
from typing import Any

PROMPT = "Write a one-line product title for item #{i}: a linen curtain, {cm} cm, colour {c}."
COLOURS = ("ivory", "sage", "slate", "terracotta", "sand", "indigo", "ochre")
PROVIDER_HOSTS = {"api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com"}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def prompt(i: int) -> str:
    return PROMPT.format(i=i, cm=100 + i % 300, c=COLOURS[i % len(COLOURS)])


def install_loopback_shim(port: int) -> None:
    import httpx

    original = httpx.AsyncHTTPTransport.handle_async_request

    async def redirected(self: Any, request: Any) -> Any:
        if request.url.host in PROVIDER_HOSTS:
            request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=port)
            request.headers["host"] = f"127.0.0.1:{port}"
        return await original(self, request)

    httpx.AsyncHTTPTransport.handle_async_request = redirected  # type: ignore[method-assign]

    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOOPBACK:
            raise OSError(f"benchmark guard: refusing to resolve {name!r} (loopback only)")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = loopback_only  # type: ignore[assignment]


def make_call(provider: str) -> tuple[Any, Any]:
    if provider == "openai":
        import openai

        client = openai.AsyncOpenAI(api_key="bench")

        def call(i: int) -> Any:
            return client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": prompt(i)}],
                max_tokens=64,
            )

        def text(result: Any) -> str:
            return result.choices[0].message.content or ""

    elif provider == "anthropic":
        import anthropic

        client = anthropic.AsyncAnthropic(api_key="bench")

        def call(i: int) -> Any:
            return client.messages.create(
                model="claude-haiku-4-5",
                messages=[{"role": "user", "content": prompt(i)}],
                max_tokens=64,
            )

        def text(result: Any) -> str:
            return result.content[0].text

    else:
        from google import genai

        client = genai.Client(api_key="bench")

        def call(i: int) -> Any:
            return client.aio.models.generate_content(model="gemini-2.5-flash", contents=prompt(i))

        def text(result: Any) -> str:
            return result.text or ""

    return call, text


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from batchling import batchify

    call, text = make_call(args.provider)
    last = [0.0]

    async def one(i: int) -> Any:
        result = await call(i)
        last[0] = time.monotonic()
        return result

    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    async with batchify(
        batch_size=args.batch_size,
        batch_window_seconds=args.window,
        batch_poll_interval_seconds=args.poll,
        cache=False,
        live_display=False,
    ):
        results = await asyncio.gather(*(one(i) for i in range(args.n)))
    wall = time.perf_counter() - start
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    for i in sorted({0, args.n // 2, args.n - 1}):
        if f"#{i}:" not in text(results[i]):
            raise AssertionError(f"caller {i} got someone else's answer")
    return {
        "provider": args.provider,
        "mode": "reference",
        "n": args.n,
        "wall_s": wall,
        "cpu_s": (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime),
        "peak_rss_mb": usage1.ru_maxrss / 1024,
        "last_resume_monotonic": last[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--provider", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--window", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=50_000)
    args = parser.parse_args()
    install_loopback_shim(args.port)
    # The same SDK imports in every provider's run, as benchmarks.scale does.
    import anthropic  # noqa: F401
    import openai  # noqa: F401
    from google import genai  # noqa: F401

    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    sys.exit(main())
