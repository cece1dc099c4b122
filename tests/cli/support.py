"""Running the `batchling` command as a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

SCRIPTS = Path(__file__).parent / "scripts"
SRC = Path(__file__).parents[2] / "src"
FAST = ("--batch-window-seconds", "0.05", "--poll-interval-seconds", "0.05")
"""Test-speed timing for `batchling run`; the behaviour is the same as with the defaults."""


def batchling(
    *args: str,
    env: Mapping[str, str | None] | None = None,
    input: str | None = None,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m batchling ARGS...` (the journal is the test's, through the inherited
    $BATCHLING_CACHE_DIR); `None` in `env` removes a variable."""
    environment = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "200"}
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return subprocess.run(
        [sys.executable, "-m", "batchling", *args],
        capture_output=True,
        text=True,
        env=environment,
        input=input,
        timeout=timeout,
        check=False,
    )


def script(name: str) -> str:
    """The path of one of the test scripts."""
    return str(SCRIPTS / name)
