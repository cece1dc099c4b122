"""Latency added by polling: how long after the provider marks a batch complete the callers resume.

Two parts:

- **Simulated clock** (`simulate`): the scheduler's own polling schedule,
  `batchling.backoff.delays(poll_interval_seconds, cap=MAX_POLL_INTERVAL_SECONDS)` as
  `Scheduler._wait_until_done` uses it (sleep, then poll), replayed without sleeping. For a batch
  that takes T seconds it gives the number of polls and the wait between completion and the
  poll that sees it. Cheap enough to replay thousands of jittered schedules.
- **Measured** (`measure_default_policy`): a real block with the default policy
  (`poll_interval_seconds=10`) against the fake server in another process, set to complete
  each batch a few seconds after creation; the added latency is the last caller's resume time
  minus the moment the server's batch became complete (both `CLOCK_MONOTONIC`, one machine).
  The post-completion cost at scale (download, parse, route 100,000 results) is measured by
  the scale benchmark with a short poll interval.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
from typing import Any

from batchling import backoff
from batchling.api import DEFAULT_POLL_INTERVAL_SECONDS
from batchling.scheduler import MAX_POLL_INTERVAL_SECONDS
from benchmarks._server import ServerProcess


def poll_times(first: float, horizon: float, rng_seed: int) -> list[float]:
    """Times (since submission) of the polls the scheduler makes, up to `horizon`."""
    random.seed(rng_seed)
    times: list[float] = []
    now = 0.0
    for delay in backoff.delays(first, cap=MAX_POLL_INTERVAL_SECONDS):
        now += delay
        times.append(now)
        if now >= horizon:
            return times
    return times


def polls_until(duration: float, first: float, seed: int) -> tuple[int, float]:
    """(polls made, seconds between completion and the poll that saw it) for one batch."""
    times = poll_times(first, duration, seed)
    return len(times), times[-1] - duration


def simulate(first: float = DEFAULT_POLL_INTERVAL_SECONDS, runs: int = 2000) -> dict[str, Any]:
    out: dict[str, Any] = {"poll_interval_seconds": first, "cap": MAX_POLL_INTERVAL_SECONDS}
    for label, duration in (("1m", 60.0), ("10m", 600.0), ("1h", 3600.0), ("24h", 86400.0)):
        polls, waits = zip(
            *(polls_until(duration, first, seed) for seed in range(runs)), strict=True
        )
        out[label] = {
            "polls_median": statistics.median(polls),
            "polls_max": max(polls),
            "wait_mean_s": statistics.fmean(waits),
            "wait_max_s": max(waits),
        }
    # Completion times spread uniformly over a day: the added wait a user sees on average.
    rng = random.Random(7)
    waits = []
    for seed in range(runs):
        duration = rng.uniform(60.0, 86400.0)
        waits.append(polls_until(duration, first, seed)[1])
    waits.sort()
    out["uniform_1m_24h"] = {
        "wait_mean_s": statistics.fmean(waits),
        "wait_p95_s": waits[int(0.95 * len(waits))],
        "wait_max_s": waits[-1],
    }
    return out


def measure_default_policy(n: int, batch_delay: float, provider: str = "openai") -> dict[str, Any]:
    """A real block with poll_interval_seconds=10 (the default): seconds from the server's
    completion to the last caller resuming."""
    with ServerProcess(batch_delay=batch_delay) as server:
        completed = subprocess.run(
            [
                sys.executable, "-m", "benchmarks.scale", "--provider", provider,
                "--mode", "batchling", "--n", str(n), "--url", server.url,
                "--poll", str(DEFAULT_POLL_INTERVAL_SECONDS), "--window", "0.2",
            ],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        stats = server.stats()
    ready = max(batch["ready_at_monotonic"] for batch in stats["batches"])
    return {
        "provider": provider,
        "n": n,
        "batch_delay_s": batch_delay,
        "added_latency_s": result["last_resume_monotonic"] - ready,
        "wall_s": result["wall_s"],
        "batches": [batch["lines"] for batch in stats["batches"]],
    }


def run(quick: bool = False) -> dict[str, Any]:
    return {
        "simulated": simulate(runs=300 if quick else 2000),
        "measured_default": measure_default_policy(n=200 if quick else 1000, batch_delay=4.0),
    }


if __name__ == "__main__":
    print(json.dumps(run(quick=True), indent=2))
