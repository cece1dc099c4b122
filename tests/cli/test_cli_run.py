"""`batchling run` and its shorthand: scripts and functions run as `python` would, batched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchling.cli import looks_like_script, split_target
from batchling.testing import FakeProviderServer
from tests.cli.support import FAST, SCRIPTS, batchling, script


def server_env(server: FakeProviderServer, count: int = 5) -> dict[str, str | None]:
    return {"FAKE_OPENAI_BASE_URL": server.openai_base_url, "ASK_COUNT": str(count)}


def replies(stdout: str) -> list[str]:
    return list(json.loads(stdout.strip().splitlines()[-1]))


def test_a_whole_script_runs_batched(fake_server: FakeProviderServer) -> None:
    result = batchling("run", *FAST, script("ask.py"), env=server_env(fake_server, 20))
    assert result.returncode == 0, result.stderr
    assert replies(result.stdout) == [f"echo: q{i}" for i in range(20)]
    assert fake_server.stats.batches_created == 1
    assert fake_server.stats.lines_per_batch == [20]
    assert fake_server.stats.realtime_calls == 0


def test_the_shorthand_without_run_does_the_same(fake_server: FakeProviderServer) -> None:
    result = batchling(*FAST, script("ask.py"), env=server_env(fake_server, 3))
    assert result.returncode == 0, result.stderr
    assert replies(result.stdout) == ["echo: q0", "echo: q1", "echo: q2"]
    assert fake_server.stats.batches_created == 1
    assert fake_server.stats.realtime_calls == 0


def test_an_async_function_runs_batched(fake_server: FakeProviderServer) -> None:
    result = batchling("run", *FAST, script("ask.py") + ":main", env=server_env(fake_server, 4))
    assert result.returncode == 0, result.stderr
    assert replies(result.stdout) == [f"echo: q{i}" for i in range(4)]
    assert fake_server.stats.lines_per_batch == [4]
    assert fake_server.stats.realtime_calls == 0


def test_a_sync_function_runs_batched(fake_server: FakeProviderServer) -> None:
    result = batchling(
        "run", *FAST, script("ask.py") + ":sync_main", env=server_env(fake_server, 4)
    )
    assert result.returncode == 0, result.stderr
    assert replies(result.stdout) == [f"echo: q{i}" for i in range(4)]
    assert fake_server.stats.lines_per_batch == [4]
    assert fake_server.stats.realtime_calls == 0


def test_the_shorthand_runs_a_function(fake_server: FakeProviderServer) -> None:
    result = batchling(*FAST, script("ask.py") + ":main", env=server_env(fake_server, 2))
    assert result.returncode == 0, result.stderr
    assert replies(result.stdout) == ["echo: q0", "echo: q1"]
    assert fake_server.stats.batches_created == 1


def test_progress_and_the_summary_go_to_stderr(fake_server: FakeProviderServer) -> None:
    result = batchling("run", *FAST, script("ask.py"), env=server_env(fake_server, 3))
    assert result.returncode == 0, result.stderr
    batch_id = fake_server.batches[0].id
    assert "batchling" not in result.stdout
    assert f"openai batch {batch_id} submitted" in result.stderr
    assert "batchling summary" in result.stderr
    assert batch_id in result.stderr.split("batchling summary", 1)[1]


def test_no_progress_prints_state_changes_only(fake_server: FakeProviderServer) -> None:
    result = batchling(
        "run", *FAST, "--no-progress", script("ask.py"), env=server_env(fake_server, 3)
    )
    assert result.returncode == 0, result.stderr
    assert "submitted" in result.stderr
    assert "batchling summary" not in result.stderr


@pytest.mark.parametrize("shorthand", [False, True])
def test_the_script_sees_its_own_argv_flags_included(shorthand: bool) -> None:
    path = script("show_argv.py")
    args = [path, "--dry-run", "-x", "value", "--help", "--", "last"]
    result = batchling(*args) if shorthand else batchling("run", "--no-progress", *args)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["argv"] == args
    assert seen["name"] == "__main__"
    assert seen["file"] == str(Path(path).resolve())
    assert seen["path0"] == str(SCRIPTS.resolve())


def test_the_scripts_exit_code_comes_through() -> None:
    result = batchling("run", script("exit_with.py"), "3")
    assert result.returncode == 3
    assert result.stdout == "about to exit\n"
    assert "Traceback" not in result.stderr


def test_exit_code_zero_comes_through() -> None:
    assert batchling(script("exit_with.py"), "0").returncode == 0


def test_an_uncaught_error_prints_its_traceback_and_exits_1() -> None:
    result = batchling("run", script("raises.py"))
    assert result.returncode == 1
    assert "Traceback (most recent call last):" in result.stderr
    assert "ValueError: boom from the script" in result.stderr
    assert 'raises.py", line' in result.stderr
    # The traceback starts in the script, as `python raises.py` prints it.
    traceback = result.stderr[result.stderr.index("Traceback") :]
    assert "runpy" not in traceback
    assert "batchling/cli.py" not in traceback


def test_an_error_in_a_function_prints_its_traceback_and_exits_1() -> None:
    result = batchling(script("raises.py") + ":explode")
    assert result.returncode == 1
    assert "ValueError: boom from the script" in result.stderr
    assert "in explode" in result.stderr


@pytest.mark.parametrize("shorthand", [False, True])
def test_a_missing_script_is_a_one_line_error(shorthand: bool, tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere.py")
    result = batchling(missing) if shorthand else batchling("run", missing)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "nowhere.py" in result.stderr
    assert "not found" in result.stderr


def test_a_missing_function_is_a_one_line_error() -> None:
    result = batchling("run", script("ask.py") + ":no_such_function")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "Error: ask.py has no function 'no_such_function'."
    ]


def test_a_function_that_needs_arguments_is_refused_in_one_line() -> None:
    result = batchling("run", script("ask.py") + ":needs_an_argument")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "needs arguments (name)" in result.stderr


def test_invalid_options_are_usage_errors() -> None:
    result = batchling("run", "--completion-window", "soon", script("show_argv.py"))
    assert result.returncode == 2
    assert "completion_window" in result.stderr
    assert "Traceback" not in result.stderr
    conflicting = batchling("run", "--no-cache", "--cache-dir", "x", script("show_argv.py"))
    assert conflicting.returncode == 2


def test_an_unknown_command_is_still_an_error() -> None:
    result = batchling("frobnicate")
    assert result.returncode == 2
    assert "No such command" in result.stderr


def test_help_shows_examples() -> None:
    result = batchling("run", "--help")
    assert result.returncode == 0
    assert "Examples:" in result.stdout
    assert "--dry-run" in result.stdout
    assert "Examples:" in batchling("--help").stdout


def test_targets_are_split_into_script_and_function() -> None:
    assert split_target("job.py") == ("job.py", None)
    assert split_target("dir/job.py:main") == ("dir/job.py", "main")
    assert split_target("job.py:Runner.go") == ("job.py", "Runner.go")
    assert split_target(r"C:\work\job.py") == (r"C:\work\job.py", None)
    assert looks_like_script("job.py")
    assert looks_like_script("job.py:main")
    assert not looks_like_script("cache")


def test_a_journal_directory_that_cannot_be_made_is_a_usage_error(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")
    result = batchling(
        "run", script("show_argv.py"), env={"BATCHLING_CACHE_DIR": str(not_a_directory)}
    )
    assert result.returncode == 2
    assert "cannot keep batchling's journal" in result.stderr
    assert "--no-cache" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""  # the script did not start
