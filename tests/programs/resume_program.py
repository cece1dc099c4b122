"""A small program the resume tests run as a subprocess, kill, and run again.

Usage: python resume_program.py BASE_URL COUNT [crash-after-create]
Prints one JSON list of reply texts on stdout when it finishes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import openai

import batchling.journal
from batchling import batchify


async def main(base_url: str, count: int) -> list[str]:
    async with (
        openai.AsyncOpenAI(base_url=base_url, api_key="sk-resume") as client,
        batchify(batch_window_seconds=0.05, poll_interval_seconds=0.05),
    ):
        replies = await asyncio.gather(
            *(
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"item {i}"}]
                )
                for i in range(count)
            )
        )
    return [reply.choices[0].message.content or "" for reply in replies]


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[3] == "crash-after-create":
        # The crash the journal must survive: the provider created the job, and the process
        # dies before it could record the job id.
        def crash(*args: object, **kwargs: object) -> None:
            os._exit(9)

        batchling.journal.Journal.mark_submitted = crash  # type: ignore[method-assign]
    print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2])))))
