"""Asks the fake OpenAI server ASK_COUNT questions with a module-level client it never closes
(the shape of the SDKs' own examples); run by the CLI tests.

The server's address comes from $FAKE_OPENAI_BASE_URL. Prints the replies as one JSON list.
"""

from __future__ import annotations

import asyncio
import json
import os

import openai

client = openai.AsyncOpenAI(base_url=os.environ["FAKE_OPENAI_BASE_URL"], api_key="sk-cli-test")


async def main() -> None:
    count = int(os.environ.get("ASK_COUNT", "5"))
    replies = await asyncio.gather(
        *(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"q{i}"}]
            )
            for i in range(count)
        )
    )
    print(json.dumps([reply.choices[0].message.content for reply in replies]))


if __name__ == "__main__":
    asyncio.run(main())
