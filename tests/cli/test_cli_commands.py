"""`batchling cache`, `batchling batches` and `batchling plugins`."""

from __future__ import annotations

import asyncio
import datetime
import importlib.metadata
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from batchling import journal
from batchling.api_keys import MissingAPIKeyError
from batchling.plugins import get_providers
from batchling.testing import FakeProviderServer
from tests.cli.support import FAST, batchling, script
from tests.conftest import fast_batchify, journaled_submission

KEY = "sk-cli-cancel"


def run_ask(server: FakeProviderServer, count: int, *options: str) -> None:
    result = batchling(
        "run",
        *FAST,
        *options,
        script("ask.py"),
        env={"FAKE_OPENAI_BASE_URL": server.openai_base_url, "ASK_COUNT": str(count)},
    )
    assert result.returncode == 0, result.stderr


def test_cache_info_before_anything_ran(cache_dir: Path) -> None:
    result = batchling("cache", "info")
    assert result.returncode == 0, result.stderr
    assert str(cache_dir / "journal.sqlite3") in result.stdout
    assert "not created yet" in result.stdout


def test_cache_info_counts_what_a_run_journaled(
    fake_server: FakeProviderServer, cache_dir: Path
) -> None:
    run_ask(fake_server, 5)
    result = batchling("cache", "info")
    assert result.returncode == 0, result.stderr
    assert str(cache_dir / "journal.sqlite3") in result.stdout
    assert "batch jobs:   1 (0 running)" in result.stdout
    assert "requests:     5 (5 with results)" in result.stdout
    assert "size:" in result.stdout


def test_cache_clear_asks_first_and_forgets_everything(fake_server: FakeProviderServer) -> None:
    run_ask(fake_server, 4)
    refused = batchling("cache", "clear", input="n\n")
    assert refused.returncode == 1
    assert "Forget 1 batch jobs and 4 requests" in refused.stdout
    assert "requests:     4" in batchling("cache", "info").stdout
    cleared = batchling("cache", "clear", "--yes")
    assert cleared.returncode == 0, cleared.stderr
    assert "Cleared 1 batch jobs and 4 requests." in cleared.stdout
    assert "requests:     0 (0 with results)" in batchling("cache", "info").stdout
    # A re-run pays again: the journal no longer answers.
    run_ask(fake_server, 4)
    assert fake_server.stats.batches_created == 2


def test_cache_dir_option(fake_server: FakeProviderServer, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    run_ask(fake_server, 2, "--cache-dir", str(elsewhere))
    result = batchling("cache", "info", "--cache-dir", str(elsewhere))
    assert str(elsewhere / "journal.sqlite3") in result.stdout
    assert "requests:     2 (2 with results)" in result.stdout
    assert "not created yet" in batchling("cache", "info").stdout


def test_batches_list_shows_the_jobs_of_a_run(fake_server: FakeProviderServer) -> None:
    assert "No batch jobs" in batchling("batches", "list").stdout
    run_ask(fake_server, 3)
    result = batchling("batches", "list")
    assert result.returncode == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if fake_server.batches[0].id in line]
    assert row.split()[:3] == ["openai", fake_server.batches[0].id, "ended"]
    assert "gpt-4o-mini" in row
    assert "completed" in row
    assert "No running batch jobs" in batchling("batches", "list", "--running").stdout


def test_batches_list_json_gives_scripts_every_job(fake_server: FakeProviderServer) -> None:
    assert json.loads(batchling("batches", "list", "--json").stdout) == []  # no journal yet
    run_ask(fake_server, 3)
    result = batchling("batches", "list", "--json")
    assert result.returncode == 0, result.stderr
    (job,) = json.loads(result.stdout)
    assert {key: job[key] for key in ("provider", "batch_id", "state", "model", "requests")} == {
        "provider": "openai",
        "batch_id": fake_server.batches[0].id,
        "state": "ended",
        "model": "gpt-4o-mini",
        "requests": 3,
    }
    assert job["provider_status"] == "completed"
    assert job["endpoint"] == "/v1/chat/completions"
    assert job["host"] == fake_server.openai_base_url.split("/")[2]  # 127.0.0.1:PORT
    assert datetime.datetime.fromisoformat(job["created_at"]).tzinfo is not None
    assert json.loads(batchling("batches", "list", "--running", "--json").stdout) == []


def test_batches_list_keeps_one_line_per_job_in_a_narrow_terminal(
    fake_server: FakeProviderServer,
) -> None:
    run_ask(fake_server, 3)
    result = batchling("batches", "list", env={"COLUMNS": "60"})
    header, row = result.stdout.splitlines()
    assert header.split() == [
        "Provider", "Batch", "id", "State", "Provider", "status", "Model", "Requests", "Created",
        "Host",
    ]  # fmt: skip
    assert row.split()[:6] == [
        "openai", fake_server.batches[0].id, "ended", "completed", "gpt-4o-mini", "3",
    ]  # fmt: skip
    assert row.split()[-1] == fake_server.openai_base_url.split("/")[2]  # 127.0.0.1:PORT


@pytest.fixture
def slow_server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(batch_delay_seconds=600) as server:
        yield server


def journaled_as_running(server: FakeProviderServer) -> bool:
    """Whether the job the server created is in the journal with its id (as `running`)."""
    if not server.batches:
        return False
    found = journaled_submission(server.batches[0].id)
    return found is not None and found.state is journal.SubmissionState.RUNNING


async def leave_a_job_running(
    server: FakeProviderServer, client: openai.AsyncOpenAI | None = None
) -> str:
    """Submit a job, then leave the block with an error: the job keeps running, journaled."""
    if client is None:
        client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key=KEY)
    async with client:
        tasks = []
        with pytest.raises(RuntimeError, match="leaving"):
            async with fast_batchify():
                tasks = [
                    asyncio.ensure_future(
                        client.chat.completions.create(
                            model="gpt-4o-mini", messages=[{"role": "user", "content": f"c{i}"}]
                        )
                    )
                    for i in range(3)
                ]
                while not journaled_as_running(server):
                    await asyncio.sleep(0.02)
                raise RuntimeError("leaving with the job running")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    (record,) = server.batches
    return record.id


async def test_batches_cancel_all_running(slow_server: FakeProviderServer) -> None:
    batch_id = await leave_a_job_running(slow_server)
    listed = batchling("batches", "list", "--running")
    assert batch_id in listed.stdout
    result = batchling("batches", "cancel", "--all-running", env={"OPENAI_API_KEY": KEY})
    assert result.returncode == 0, result.stderr
    assert f"cancelling openai batch {batch_id}" in result.stdout
    assert slow_server.batches[0].status in ("cancelling", "cancelled")


async def test_batches_cancel_by_id(slow_server: FakeProviderServer) -> None:
    batch_id = await leave_a_job_running(slow_server)
    result = batchling("batches", "cancel", batch_id, env={"OPENAI_API_KEY": KEY})
    assert result.returncode == 0, result.stderr
    assert batch_id in result.stdout
    assert slow_server.batches[0].status in ("cancelling", "cancelled")
    # Journaled as cancelled on purpose: a re-run sends again what it left, as after
    # `cancel_on_exit`, instead of failing on it.
    submission = journaled_submission(batch_id)
    assert submission is not None
    assert submission.provider_status == "cancel requested"
    assert submission.info.get(journal.CANCEL_REQUESTED_KEY) is True


def _as_if_interrupted_while_submitting(cache_dir: Path, batch_id: str) -> str:
    """Make the journal forget the job's id, as a crash between its creation and the id's
    record leaves it (`submitting`); return the submission's own id."""
    with sqlite3.connect(cache_dir / journal.FILE_NAME) as db:
        (submission_id,) = db.execute(
            "SELECT submission_id FROM submissions WHERE batch_id = ?", (batch_id,)
        ).fetchone()
        db.execute(
            "UPDATE submissions SET state = 'submitting', batch_id = NULL WHERE batch_id = ?",
            (batch_id,),
        )
    return str(submission_id)


@pytest.mark.parametrize("by", ["submission id", "--all-running"])
async def test_batches_cancel_finds_the_job_of_an_interrupted_submission(
    slow_server: FakeProviderServer, cache_dir: Path, by: str
) -> None:
    batch_id = await leave_a_job_running(slow_server)
    submission_id = _as_if_interrupted_while_submitting(cache_dir, batch_id)
    assert f"(submitting: {submission_id})" in batchling("batches", "list").stdout
    named = [submission_id] if by == "submission id" else ["--all-running"]
    result = batchling("batches", "cancel", *named, env={"OPENAI_API_KEY": KEY})
    assert result.returncode == 0, result.stderr
    assert f"cancelling openai batch {batch_id}" in result.stdout
    assert slow_server.batches[0].status in ("cancelling", "cancelled")
    submission = journaled_submission(batch_id)  # found, and its id journaled
    assert submission is not None
    assert submission.submission_id == submission_id
    assert submission.provider_status == "cancel requested"


async def test_batches_cancel_of_a_submission_that_created_no_job_says_so(
    slow_server: FakeProviderServer, cache_dir: Path
) -> None:
    batch_id = await leave_a_job_running(slow_server)
    submission_id = _as_if_interrupted_while_submitting(cache_dir, batch_id)
    with sqlite3.connect(cache_dir / journal.FILE_NAME) as db:  # another submission's id
        db.execute(
            "UPDATE submissions SET submission_id = 'batchling_000000000000000000000000' "
            "WHERE submission_id = ?",
            (submission_id,),
        )
    result = batchling(
        "batches", "cancel", "batchling_000000000000000000000000", env={"OPENAI_API_KEY": KEY}
    )
    assert result.returncode == 0, result.stderr
    assert "has no job for this submission" in result.stdout
    assert slow_server.batches[0].status == "in_progress"


async def test_batches_cancel_names_the_missing_api_key(slow_server: FakeProviderServer) -> None:
    batch_id = await leave_a_job_running(slow_server)
    result = batchling("batches", "cancel", batch_id, env={"OPENAI_API_KEY": None})
    assert result.returncode == 1
    assert "OPENAI_API_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr
    assert slow_server.batches[0].status == "in_progress"


AZURE_ENV_CLEARED = {
    "OPENAI_API_KEY": None,
    "AZURE_OPENAI_API_KEY": None,
    "AZURE_OPENAI_AD_TOKEN": None,
    "OPENAI_API_VERSION": None,
}


async def leave_an_azure_job_running(server: FakeProviderServer) -> str:
    client = openai.AsyncAzureOpenAI(
        azure_endpoint=server.azure_endpoint, api_key=KEY, api_version="2024-10-21"
    )
    return await leave_a_job_running(server, client)


async def test_batches_cancel_reaches_an_azure_job_with_the_azure_key(
    slow_server: FakeProviderServer,
) -> None:
    # The fake Azure host refuses a request without its `api-key` header or `api-version`: a
    # plain OpenAI client built from OPENAI_API_KEY could not cancel this job.
    batch_id = await leave_an_azure_job_running(slow_server)
    result = batchling(
        "batches", "cancel", batch_id, env={**AZURE_ENV_CLEARED, "AZURE_OPENAI_API_KEY": KEY}
    )
    assert result.returncode == 0, result.stderr
    assert f"cancelling openai batch {batch_id}" in result.stdout
    assert slow_server.batches[0].status in ("cancelling", "cancelled")


async def test_batches_cancel_names_the_azure_key_variables(
    slow_server: FakeProviderServer,
) -> None:
    batch_id = await leave_an_azure_job_running(slow_server)
    result = batchling(
        "batches", "cancel", batch_id, env={**AZURE_ENV_CLEARED, "OPENAI_API_KEY": KEY}
    )
    assert result.returncode == 1
    assert "AZURE_OPENAI_AD_TOKEN or AZURE_OPENAI_API_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr
    assert slow_server.batches[0].status == "in_progress"


async def test_the_anthropic_client_for_jobs_takes_its_key_or_token_from_the_environment(
    fake_server: FakeProviderServer,
) -> None:
    provider = get_providers()["anthropic"]
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("ANTHROPIC_API_KEY", raising=False)
        patch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
        with pytest.raises(MissingAPIKeyError, match="ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN"):
            provider.default_client(fake_server.anthropic_base_url)
        patch.setenv("ANTHROPIC_AUTH_TOKEN", "token")
        client = provider.default_client(fake_server.anthropic_base_url)
    assert isinstance(client, anthropic.AsyncAnthropic)
    assert client.auth_token == "token"
    assert client.api_key is None
    await client.close()


async def test_an_azure_job_journaled_without_its_api_version_needs_openai_api_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = get_providers()["openai"]
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_API_VERSION", raising=False)
    base_url = "https://example-resource.openai.azure.com/openai/"
    with pytest.raises(RuntimeError, match="OPENAI_API_VERSION is not set"):
        provider.client_for_job(base_url, {})
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-10-21")
    client = provider.client_for_job(base_url, {})
    assert isinstance(client, openai.AsyncAzureOpenAI)
    assert client._api_version == "2024-10-21"
    await client.close()


def test_batches_cancel_of_an_unknown_id(fake_server: FakeProviderServer) -> None:
    run_ask(fake_server, 1)
    result = batchling("batches", "cancel", "batch_unknown", env={"OPENAI_API_KEY": KEY})
    assert result.returncode == 1
    assert "batch_unknown: not in the journal" in result.stderr


def test_batches_cancel_needs_ids_or_all_running() -> None:
    result = batchling("batches", "cancel")
    assert result.returncode == 2
    assert "--all-running" in result.stderr


def test_plugins_lists_the_built_in_providers() -> None:
    result = batchling("plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for name, module in [
        ("openai", "batchling.providers.openai"),
        ("anthropic", "batchling.providers.anthropic"),
        ("gemini", "batchling.providers.google_genai"),
    ]:
        assert f"{name}  [built-in: {module}]" in lines
    assert "  openai._base_client.AsyncAPIClient.request" in lines
    assert "  anthropic._base_client.BaseClient._calculate_nonstreaming_timeout (hook)" in lines


def test_plugins_names_the_distribution_and_version_of_third_party_plugins() -> None:
    version = importlib.metadata.version("batchling-echo")
    result = batchling("plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"echo  [batchling-echo {version}, plugin 'echo': batchling_echo.plugin]" in lines
    assert "  batchling_echo.echo_sdk.AsyncEchoClient.complete" in lines
    observer = next(line for line in lines if line.startswith("  echo_observer  "))
    assert f"[batchling-echo {version}, plugin 'echo_observer': batchling_echo.observer]" in (
        observer
    )
    assert "observes: batch_finished, batch_polled, batch_submitted" in observer


def test_plugins_blocked_by_the_environment_are_listed_as_blocked() -> None:
    result = batchling("plugins", env={"BATCHLING_DISABLE_PLUGINS": "batchling-echo,mistral"})
    assert result.returncode == 0, result.stderr
    assert "echo  [" not in result.stdout
    assert "mistral  [" not in result.stdout
    assert "blocked by BATCHLING_DISABLE_PLUGINS: mistral, echo, echo_observer" in result.stdout


async def test_an_azure_job_client_prefers_the_entra_id_token_as_azure_openai_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = get_providers()["openai"]
    base_url = "https://example-resource.openai.azure.com/openai/"
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", "entra-token")
    client = provider.client_for_job(base_url, {"azure_api_version": "2024-10-21"})
    assert isinstance(client, openai.AsyncAzureOpenAI)
    assert client._azure_ad_token == "entra-token"
    await client.close()
    monkeypatch.delenv("AZURE_OPENAI_AD_TOKEN")
    client = provider.client_for_job(base_url, {"azure_api_version": "2024-10-21"})
    assert client.api_key == KEY
    assert client._azure_ad_token is None
    await client.close()


async def test_the_gemini_client_for_jobs_names_its_key_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = get_providers()["gemini"]
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="GOOGLE_API_KEY or GEMINI_API_KEY is not set"):
        provider.default_client("http://127.0.0.1:9")
