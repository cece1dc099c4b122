"""`batchling demo`: the product example, offline, with its batch jobs named."""

from __future__ import annotations

import re

from tests.cli.support import batchling

BATCH_IDS = (r"\bbatch_[0-9a-f]+", r"\bmsgbatch_[0-9a-f]+", r"\bbatches/[0-9a-f]+")


def test_the_demo_exits_0_and_names_its_batches() -> None:
    result = batchling("demo", "--requests", "60")
    assert result.returncode == 0, result.stderr
    assert "60 results from 3 batch jobs" in result.stdout
    assert "real-time calls: 0" in result.stdout
    assert "echo: hand-made oak chair, model 1" in result.stdout
    summary = result.stderr.split("batchling summary", 1)[1]
    assert "60 requests in 3 batch jobs" in summary
    for pattern in BATCH_IDS:
        (batch_id,) = re.findall(pattern, result.stdout)
        assert batch_id in summary
    assert len(result.stdout.splitlines()) <= 6


def test_the_demo_without_progress_still_prints_the_summary() -> None:
    result = batchling("demo", "--requests", "9", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "9 results from 3 batch jobs" in result.stdout
    assert "batchling summary" in result.stderr
    assert "9 requests in 3 batch jobs" in result.stderr
