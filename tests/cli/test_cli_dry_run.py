"""`batchling run --dry-run`: every call counted and priced, nothing sent."""

from __future__ import annotations

from batchling.testing import FakeProviderServer
from tests.cli.support import FAST, batchling, script


def test_a_dry_run_counts_a_whole_gather_and_sends_nothing(
    fake_server: FakeProviderServer,
) -> None:
    result = batchling(
        "run",
        "--dry-run",
        script("ask.py"),
        env={"FAKE_OPENAI_BASE_URL": fake_server.openai_base_url, "ASK_COUNT": "1000"},
    )
    assert result.returncode == 0, result.stderr
    assert "1,000 batchable requests seen" in result.stderr
    assert "gpt-4o-mini" in result.stderr
    assert "nothing was sent" in result.stderr
    # The program stopped before it got any result.
    assert result.stdout == ""
    assert fake_server.stats.requests == []
    assert fake_server.stats.batches_created == 0
    assert fake_server.stats.realtime_calls == 0
    assert fake_server.stats.files_uploaded == 0


def test_a_dry_run_of_a_function_exits_0_and_sends_nothing(
    fake_server: FakeProviderServer,
) -> None:
    result = batchling(
        *FAST,
        script("ask.py") + ":main",
        env={"FAKE_OPENAI_BASE_URL": fake_server.openai_base_url, "ASK_COUNT": "50"},
    )
    assert result.returncode == 0, result.stderr
    dry = batchling(
        "run",
        "--dry-run",
        script("ask.py") + ":main",
        env={"FAKE_OPENAI_BASE_URL": fake_server.openai_base_url, "ASK_COUNT": "80"},
    )
    assert dry.returncode == 0, dry.stderr
    assert "80 batchable requests seen" in dry.stderr
    assert "30 would be sent" in dry.stderr
    assert fake_server.stats.batches_created == 1


def test_a_dry_run_of_a_program_with_its_own_block_sends_nothing(
    fake_server: FakeProviderServer,
) -> None:
    env = {"FAKE_OPENAI_BASE_URL": fake_server.openai_base_url, "ASK_COUNT": "30"}
    result = batchling("run", "--dry-run", script("ask.py"), env={**env, "ASK_OWN_BLOCK": "1"})
    assert result.returncode == 0, result.stderr
    assert "30 batchable requests seen" in result.stderr
    assert fake_server.stats.requests == []


def test_strict_applies_inside_a_program_s_own_block(fake_server: FakeProviderServer) -> None:
    env = {"FAKE_OPENAI_BASE_URL": fake_server.openai_base_url, "ASK_OWN_BLOCK": "1"}
    result = batchling("run", "--strict", script("ask.py"), env={**env, "ASK_STREAM": "1"})
    assert result.returncode != 0
    assert "NotBatchableError" in result.stderr
    assert fake_server.stats.realtime_calls == 0
