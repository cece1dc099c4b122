"""The fake provider server in its own process, so its CPU work does not share the GIL with the
client being measured.

``python -m benchmarks._server [--batch-delay S]`` starts `batchling.testing.FakeProviderServer`
on 127.0.0.1, prints one JSON line ``{"url": ...}``, then answers commands read from stdin, one
per line, with one JSON line each: ``stats`` (what crossed the wire, per provider) and ``quit``.
`ServerProcess` drives it from the benchmark runner.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from batchling.testing import FakeProviderServer


def _payload_bytes(server: FakeProviderServer, record: Any) -> int:
    """Size of the batch's input as it crossed the wire (JSONL file, or the inline lines)."""
    file_id = getattr(record, "input_file_id", None) or getattr(record, "input_file", None)
    if file_id:
        try:
            return len(server.file_content(file_id))
        except KeyError:
            pass
    return sum(len(json.dumps(line, separators=(",", ":"))) + 1 for line in record.lines)


def snapshot(server: FakeProviderServer) -> dict[str, Any]:
    stats = server.stats
    batches = [
        {
            "provider": record.provider,
            "lines": len(record.lines),
            "bytes": _payload_bytes(server, record),
            "ready_at_monotonic": record.ready_at_monotonic,
            "status": str(record.status),
        }
        for record in server.batches
    ]
    providers = {}
    for name in ("openai", "anthropic", "gemini"):
        counters = stats.provider(name)
        providers[name] = {
            "batches_created": counters.batches_created,
            "files_uploaded": counters.files_uploaded,
            "lines_per_batch": counters.lines_per_batch,
            "realtime_calls": counters.realtime_calls,
        }
    return {
        "realtime_calls": stats.realtime_calls,
        "http_requests": len(stats.requests),
        "providers": providers,
        "batches": batches,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-delay", type=float, default=0.0)
    args = parser.parse_args()
    with FakeProviderServer(batch_delay_seconds=args.batch_delay, host="127.0.0.1") as server:
        print(json.dumps({"url": server.url}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                print(json.dumps(snapshot(server)), flush=True)
            elif command == "quit":
                break


class ServerProcess:
    """``with ServerProcess() as server:`` a fake provider server in a child process."""

    def __init__(self, batch_delay: float = 0.0) -> None:
        self._batch_delay = batch_delay
        self._process: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> ServerProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._server", "--batch-delay", str(self._batch_delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        self.url = json.loads(self._process.stdout.readline())["url"]
        return self

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    def stats(self) -> dict[str, Any]:
        assert self._process is not None
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write("stats\n")
        self._process.stdin.flush()
        return json.loads(self._process.stdout.readline())

    def __exit__(self, *exc: object) -> None:
        process = self._process
        if process is None:
            return
        try:
            assert process.stdin is not None
            process.stdin.write("quit\n")
            process.stdin.close()
            process.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        self._process = None


if __name__ == "__main__":
    main()
