"""Asks the fake OpenAI server ASK_COUNT questions at once; run by the CLI tests.

The server's address comes from $FAKE_OPENAI_BASE_URL. Prints the replies as one JSON list.
With $ASK_OWN_BLOCK set, the program has its own `batchify()` block, as a program written for
batchling does; with $ASK_STREAM set, it first asks for a streamed answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

import openai

from batchling import batchify


async def main() -> None:
    count = int(os.environ.get("ASK_COUNT", "5"))
    async with openai.AsyncOpenAI(
        base_url=os.environ["FAKE_OPENAI_BASE_URL"], api_key="sk-cli-test"
    ) as client:
        own_block = batchify() if os.environ.get("ASK_OWN_BLOCK") else contextlib.nullcontext()
        async with own_block:
            if os.environ.get("ASK_STREAM"):
                await client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "s"}], stream=True
                )
            replies = await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": f"q{i}"}]
                    )
                    for i in range(count)
                )
            )
    print(json.dumps([reply.choices[0].message.content for reply in replies]))


def sync_main() -> None:
    """A sync entry point that starts its own event loop."""
    asyncio.run(main())


def needs_an_argument(name: str) -> None:
    print(name)


if __name__ == "__main__":
    asyncio.run(main())
