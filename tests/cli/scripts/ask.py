"""Asks the fake OpenAI server ASK_COUNT questions at once; run by the CLI tests.

The server's address comes from $FAKE_OPENAI_BASE_URL. Prints the replies as one JSON list.
"""

from __future__ import annotations

import asyncio
import json
import os

import openai


async def main() -> None:
    count = int(os.environ.get("ASK_COUNT", "5"))
    async with openai.AsyncOpenAI(
        base_url=os.environ["FAKE_OPENAI_BASE_URL"], api_key="sk-cli-test"
    ) as client:
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
