"""Profile the OpenAI scale run with pyinstrument and summarise where the time goes.

The profiled run is separate from the measured one: pyinstrument's hook runs on every Python
call and roughly doubles CPU time, so its numbers are shares, not timings. The garbage collector
is off in it: a collector pass is charged to whichever function allocated last, which would
scatter its time (measured on its own in the scale runs) over unrelated functions.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

from benchmarks._server import ServerProcess


def _short(path: str | None) -> str:
    path = path or "?"
    for marker in ("site-packages/", "/src/", "/lib/python3."):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/lib/python3." else tail
    return os.path.relpath(path) if os.path.isabs(path) else path


def summarise(session_path: str, top: int = 15) -> dict[str, Any]:
    from pyinstrument.session import Session

    session = Session.load(session_path)
    root = session.root_frame()
    assert root is not None
    total = root.time or 1.0
    inclusive: collections.Counter[tuple[str, str, int]] = collections.Counter()
    own: collections.Counter[tuple[str, str, int]] = collections.Counter()

    def walk(frame: Any, on_stack: frozenset[tuple[str, str, int]]) -> None:
        key = (frame.function, _short(frame.file_path), frame.line_no or 0)
        if frame.function == "[self]" or frame.file_path is None:
            return
        own[key] += frame.total_self_time
        if key not in on_stack:
            inclusive[key] += frame.time
        for child in frame.children:
            walk(child, on_stack | {key})

    walk(root, frozenset())

    def rows(counter: collections.Counter[tuple[str, str, int]], keep: Any) -> list[dict[str, Any]]:
        out = []
        for (function, path, line), seconds in counter.most_common():
            if keep(path, function):
                out.append({"where": f"{path}:{line}", "function": function,
                            "share_pct": 100 * seconds / total})  # fmt: skip
            if len(out) == top:
                break
        return out

    def is_batchling(path: str, function: str) -> bool:
        return path.startswith("batchling/") and not path.startswith("batchling/testing/")

    sdk_share = {
        label: 100 * sum(s for (f, p, _), s in inclusive.items() if (f, p) == key) / total
        for label, key in {
            "SDK argument transform (`async_maybe_transform`; the create shortcut skips it)": (
                "async_maybe_transform", "openai/_utils/_transform.py"),
            "SDK `_build_request` (once per client identity)": (
                "_build_request", "openai/_base_client.py"),
            "SDK `_process_response` (answers that are no plain model)": (
                "_process_response", "openai/_base_client.py"),
            "pydantic validation of the answers (`model_validate`)": (
                "model_validate", "pydantic/main.py"),
            "the journal (`batchling/journal.py`, every read and write)": (
                "locked", "batchling/journal.py"),
        }.items()
    }  # fmt: skip
    return {
        "duration_s": session.duration,
        "cpu_s": session.cpu_time,
        "sample_count": session.sample_count,
        "batchling_inclusive": rows(inclusive, is_batchling),
        "self_time": rows(own, lambda path, function: True),
        "sdk_shares": sdk_share,
    }


def run(n: int, keep_dir: str | None = None) -> dict[str, Any]:
    directory = keep_dir or tempfile.mkdtemp(prefix="batchling-bench-profile-")
    session_path = os.path.join(directory, f"openai-{n}.pyisession")
    with ServerProcess() as server:
        completed = subprocess.run(
            [
                sys.executable, "-m", "benchmarks.scale", "--provider", "openai",
                "--mode", "batchling", "--n", str(n), "--url", server.url,
                "--profile", session_path, "--no-gc",
            ],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    summary = summarise(session_path)
    summary.update({"n": n, "session": session_path, "profiled_wall_s": result["wall_s"]})
    return summary


if __name__ == "__main__":
    print(json.dumps(summarise(sys.argv[1]), indent=2))
