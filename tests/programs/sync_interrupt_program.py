"""A sync block interrupted by Ctrl-C while its exit waits for a sync client's call made from
another thread; run as a subprocess by the interruption tests.

Usage: python sync_interrupt_program.py BASE_URL [cancel-on-exit]
Prints one JSON object: what the caller got and whether the block raised KeyboardInterrupt.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import openai

from batchling import batchify


def main(base_url: str, cancel_on_exit: bool) -> dict[str, object]:
    client = openai.OpenAI(base_url=base_url, api_key="sk-sync-interrupt")
    outcome: list[str] = []

    def call() -> None:
        try:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "interrupted"}]
            )
            outcome.append("answered")
        except BaseException as exc:  # what the caller's thread sees
            outcome.append(type(exc).__name__)

    caller = threading.Thread(target=call)
    interrupted = False
    try:
        with batchify(
            batch_window_seconds=0.05, poll_interval_seconds=0.05, cancel_on_exit=cancel_on_exit
        ) as ctx:
            caller.start()
            while not ctx.report.batch_ids:
                time.sleep(0.01)
            # Ctrl-C once the block's body ended and its exit waits for the caller's job.
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    except KeyboardInterrupt:
        interrupted = True
    caller.join(30)
    return {
        "interrupted": interrupted,
        "caller": outcome,
        "left_running": ctx.report.left_running_batch_ids,
        "cancelled": ctx.report.cancelled_batch_ids,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2:] == ["cancel-on-exit"])))
