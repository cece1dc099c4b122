"""The PyPI reference implementation, `batchling==0.1.0a3`, against the same fake server.

It is installed with pip into a virtual environment of its own under the system temp directory
(never into the project's environment), with the newest SDK releases it can hook: it patches
`httpx.AsyncClient.send` and `aiohttp.ClientSession._request`, so it needs `openai` 2.x (3.x
sends through `httpx2`) and `anthropic` 0.x (1.x and 2.x send through `httpx2`).
`benchmarks/reference_worker.py` runs the calls; see there how its traffic is kept on 127.0.0.1.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any

from benchmarks._server import ServerProcess

PACKAGES = ["batchling==0.1.0a3", "openai>=2,<3", "anthropic<1", "google-genai>=3.4"]
WORKER = os.path.join(os.path.dirname(__file__), "reference_worker.py")


def find_interpreter(minimum: tuple[int, int]) -> str | None:
    """A Python of at least `minimum` on this machine (PATH, then pyenv's versions)."""
    candidates = [shutil.which(f"python3.{minor}") for minor in range(minimum[1], 15)]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python")))
    for candidate in candidates:
        if not candidate:
            continue
        try:
            version = subprocess.run(
                [candidate, "-c", "import sys; print(*sys.version_info[:2])"],
                capture_output=True, text=True, check=True, timeout=30,
            ).stdout.split()  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            continue
        if tuple(map(int, version)) >= minimum:
            return candidate
    return None


def ensure_venv(python: str) -> tuple[str, dict[str, str]]:
    """A venv (reused across runs) with the reference and the SDKs; returns its python."""
    tag = subprocess.run(
        [python, "-c", "import sys; print('%d%d' % sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    venv = os.path.join(tempfile.gettempdir(), f"batchling-bench-reference-py{tag}")
    venv_python = os.path.join(venv, "bin", "python")
    marker = os.path.join(venv, ".bench-ready")
    if not os.path.exists(marker):
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([python, "-m", "venv", venv], check=True)
        subprocess.run(
            [venv_python, "-m", "pip", "install", "--quiet", *PACKAGES],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        with open(marker, "w") as handle:
            handle.write("\n".join(PACKAGES))
    versions = subprocess.run(
        [venv_python, "-c",
         "import importlib.metadata as m, sys; print(__import__('json').dumps({p: m.version(p) "
         "for p in ('batchling', 'openai', 'anthropic', 'google-genai')} | "
         "{'python': sys.version.split()[0]}))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return venv_python, json.loads(versions.stdout)


def root_error(stderr: str) -> str:
    """The first exception of a chained traceback (the cause), with where it was raised."""
    lines = stderr.strip().splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception): ", line):
            where = ""
            for previous in reversed(lines[:index]):
                found = re.search(r'File ".*?site-packages/([^"]+)", line (\d+)', previous)
                if found:
                    where = f" (at {found.group(1)}:{found.group(2)})"
                    break
            return line.strip() + where
    return lines[-1].strip() if lines else ""


def run_one(venv_python: str, provider: str, n: int, timeout: float) -> dict[str, Any]:
    with ServerProcess() as server:
        port = server.url.rsplit(":", 1)[1]
        try:
            completed = subprocess.run(
                [venv_python, WORKER, "--provider", provider, "--n", str(n), "--port", port],
                capture_output=True, text=True, timeout=timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"provider": provider, "n": n, "ok": False, "error": f"timed out ({timeout}s)"}
        stats = server.stats()
    batches = [batch["lines"] for batch in stats["batches"] if batch["provider"] == provider]
    if completed.returncode != 0:
        return {
            "provider": provider, "n": n, "ok": False, "batches": batches,
            "error": root_error(completed.stderr) or f"exit code {completed.returncode}",
        }  # fmt: skip
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result.update({"ok": True, "batches": batches})
    return result


def run(n: int, quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": [], "notes": []}
    python = find_interpreter((3, 12))
    if python is None:
        out["notes"].append("no Python >= 3.12 on this machine: 0.1.0a3 not run")
        return out
    try:
        venv_python, versions = ensure_venv(python)
    except subprocess.CalledProcessError as exc:
        out["notes"].append(f"could not install {PACKAGES}: {(exc.stderr or '')[-300:]}")
        return out
    out["versions"] = versions
    for provider, size in (("openai", n), ("anthropic", n), ("gemini", min(n, 50))):
        result = run_one(venv_python, provider, size, timeout=900)
        out["runs"].append(result)
        if "benchmark guard" in result.get("error", ""):
            out["notes"].append(
                f"{provider}: 0.1.0a3 did not batch the SDK's call; it let it through to the "
                "provider's real-time endpoint (stopped by the loopback guard: nothing was sent)."
            )
    if not quick:
        # The project's own Python (3.11), which 0.1.0a3 declares it supports.
        try:
            venv311, versions311 = ensure_venv(sys.executable)
            run311 = run_one(venv311, "openai", 200, timeout=300)
            run311["python"] = versions311["python"]
            out["py311"] = run311
        except subprocess.CalledProcessError as exc:
            out["notes"].append(f"3.11 venv failed: {(exc.stderr or '')[-300:]}")
    return out


if __name__ == "__main__":
    print(json.dumps(run(200, quick=True), indent=2))
