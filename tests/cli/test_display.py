"""The dry-run cost table, the progress display and the exit summary, rendered to a recording
console."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from typing import Any

import pytest
from rich.console import Console

from batchling import display, pricing
from batchling.dryrun import DryRunPlan, JournalState
from batchling.provider import BatchRequest, BatchState, BatchStatus, SubmittedBatch
from batchling.report import RunReport


def recording_console(width: int = 120) -> Console:
    return Console(record=True, file=io.StringIO(), width=width)


@pytest.fixture(autouse=True)
def shipped_prices_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pricing.PRICES_ENV, raising=False)
    monkeypatch.setattr(pricing, "_registered", {})


@dataclass
class StubProvider:
    name: str = "openai"
    max_requests_per_batch: int = 50_000
    max_bytes_per_batch: int = 200 * 1024 * 1024


def request(text: str, *, model: str = "gpt-4o-mini", provider: str = "openai") -> BatchRequest:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return BatchRequest(
        provider=provider,
        client_key="client",
        endpoint="/v1/chat/completions",
        model=model,
        body=body,
        size_bytes=len(text) + 60,
        request_hash=f"{hash(text):x}",
        base_url="https://api.example",
        client=None,
    )


def plan_of(*requests: tuple[BatchRequest, JournalState], batch_size: int = 50_000) -> DryRunPlan:
    plan = DryRunPlan(batch_size=batch_size)
    for item, state in requests:
        plan.add(StubProvider(name=item.provider), item, state)  # type: ignore[arg-type]
    return plan


def rows(text: str, *needles: str) -> list[str]:
    return [line for line in text.splitlines() if all(needle in line for needle in needles)]


def test_the_cost_table_of_a_known_model() -> None:
    # 1,000 requests of 400 characters ("user" + 396) are ~100 tokens each: 100,000 tokens of
    # gpt-4o-mini at $0.15 per million is $0.015 in real time, $0.0075 in a batch.
    plan = plan_of(*[(request("x" * 396), JournalState.NEW) for _ in range(1000)])
    console = recording_console()
    display.print_dry_run_summary(plan, console=console)
    text = console.export_text()
    assert "1,000 batchable requests seen; 1,000 would be sent in 1 batch job." in text
    (row,) = rows(text, "gpt-4o-mini")
    assert row.split() == [
        "openai", "gpt-4o-mini", "1,000", "1", "100,000", "$0.0150", "$0.0075", "$0.0075"
    ]  # fmt: skip
    assert "/v1/chat/completions" in text
    assert "~4 characters/token" in text
    assert "output tokens are not included" in text
    assert f"as of {pricing.prices_as_of()}" in text
    assert "unknown price" not in text


def test_the_table_splits_batches_and_prices_each_model() -> None:
    plan = plan_of(
        *[(request(f"{i:04d}" + "y" * 3996, model="gpt-4.1"), JournalState.NEW) for i in range(5)],
        *[(request("z" * 36, model="house-model-7"), JournalState.NEW) for _ in range(3)],
        batch_size=2,
    )
    console = recording_console()
    display.print_dry_run_summary(plan, console=console)
    text = console.export_text()
    # 5 requests of 4,004 characters (1,001 tokens) to gpt-4.1 at $2 per million, in jobs of 2.
    (row,) = rows(text, "gpt-4.1")
    assert row.split() == ["openai", "gpt-4.1", "5", "3", "5,005", "$0.0100", "$0.0050", "$0.0050"]
    (unknown,) = rows(text, "house-model-7")
    assert unknown.split() == [
        "openai",
        "house-model-7",
        "3",
        "2",
        "30",
        "unknown",
        "price",
        "-",
        "-",
    ]
    (total,) = rows(text, "Total")
    assert total.split() == ["Total", "8", "5", "5,035", "$0.0100+", "$0.0050+", "$0.0050+"]
    assert "3 requests of models without a known price are not in the totals" in text


def test_journaled_requests_cost_nothing() -> None:
    plan = plan_of(
        (request("a" * 396), JournalState.NEW),
        (request("b" * 396), JournalState.CACHED),
        (request("c" * 396), JournalState.CACHED),
        (request("d" * 396), JournalState.SUBMITTED),
    )
    console = recording_console()
    display.print_dry_run_summary(plan, console=console)
    text = console.export_text()
    assert "4 batchable requests seen; 1 would be sent in 1 batch job." in text
    (row,) = rows(text, "gpt-4o-mini")
    assert row.split()[2:6] == ["1", "1", "100", "<$0.0001"]
    assert row.split()[-3:] == ["1", "/", "2"]
    assert "Journaled" in text
    assert "not paid again" in text


def test_calls_that_would_go_real_time_are_listed() -> None:
    plan = plan_of((request("hello"), JournalState.NEW))
    plan.add_pass_through("openai", "streaming")
    plan.add_pass_through("openai", "streaming")
    plan.add_pass_through("gemini", "streaming")
    console = recording_console()
    display.print_dry_run_summary(plan, console=console)
    text = console.export_text()
    assert (
        "Would be sent in real time at full price: 3 (gemini streaming: 1, openai streaming: 2)"
        in text
    )


def test_a_narrow_console_keeps_every_number_whole() -> None:
    plan = plan_of(*[(request("x" * 396), JournalState.NEW) for _ in range(1000)])
    console = recording_console(width=80)
    display.print_dry_run_summary(plan, console=console)
    text = console.export_text()
    (row,) = rows(text, "100,000")
    assert row.split()[-5:] == ["1,000", "1", "100,000", "$0.0150", "$0.0075"]
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80


def test_a_broken_user_price_table_shows_as_unknown_with_the_problem(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "prices.json"
    broken.write_text("{")
    monkeypatch.setenv(pricing.PRICES_ENV, str(broken))
    console = recording_console()
    display.print_dry_run_summary(plan_of((request("x"), JournalState.NEW)), console=console)
    text = console.export_text()
    assert "unknown price" in text
    assert "Price table problem" in text


def summary_text(report: RunReport) -> str:
    console = recording_console()
    display.print_run_summary(report, console=console)
    return console.export_text()


def test_the_run_summary_names_the_jobs_and_the_saving() -> None:
    report = RunReport(batched=1000, failed=2, from_journal=7)
    report.batch_ids += ["batch_abc", "msgbatch_def"]
    report.resumed_batch_ids.append("batches/ghi")
    report.passed_through.update({"streaming": 3, "deadline": 1})
    report.batched_input_tokens[("openai", "gpt-4o-mini")] = 100_000
    report.batched_by_model[("openai", "gpt-4o-mini")] = 1000
    report.batched_input_tokens[("openai", "house-model-7")] = 50
    report.batched_by_model[("openai", "house-model-7")] = 5
    text = summary_text(report)
    assert "batchling summary" in text
    assert "1,000 requests in 2 batch jobs: batch_abc, msgbatch_def" in text
    assert "1 job an earlier run submitted: batches/ghi" in text
    assert "4 at full price (streaming: 3, deadline: 1)" in text
    assert "from journal  7" in text
    assert "failed        2" in text
    words = " ".join(text.split())  # however the console wrapped the line
    assert "$0.0075 vs real-time prices (input tokens only; USD list prices as of" in words
    assert "5 requests of models without a known price not counted" in words


def test_the_run_summary_says_why_a_broken_user_price_table_priced_nothing(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(pricing.PRICES_ENV, str(tmp_path / "missing.json"))
    report = RunReport(batched=10)
    report.batched_input_tokens[("openai", "gpt-4o-mini")] = 1_000
    report.batched_by_model[("openai", "gpt-4o-mini")] = 10
    words = " ".join(summary_text(report).split())
    assert "10 requests of models without a known price not counted" in words
    assert "Price table problem" in words
    assert "missing.json" in words


def test_the_run_summary_lists_many_jobs_briefly() -> None:
    report = RunReport(batched=30)
    report.batch_ids += [f"batch_{n}" for n in range(30)]
    text = summary_text(report)
    assert "batch_9 and 20 more" in text
    assert "batch_10" not in text


def test_a_block_that_made_no_call_gets_one_line() -> None:
    text = summary_text(RunReport())
    assert (
        text.strip() == "batchling: no OpenAI, Anthropic or Gemini call was made inside batchify()."
    )


BATCH = SubmittedBatch("openai", "batch_abc", "/v1/chat/completions", "gpt-4o-mini", 200)
OTHER = SubmittedBatch("anthropic", "msgbatch_def", "/v1/messages", "claude-haiku-4-5", 100)


def play_a_run(progress: display.ProgressDisplay) -> None:
    progress.start()
    progress.batch_submitted(BATCH, resumed=False)
    progress.batch_submitted(OTHER, resumed=True)
    progress.batch_polled(BATCH, BatchStatus(BatchState.RUNNING, "validating", 200, 0, 0))
    progress.batch_polled(BATCH, BatchStatus(BatchState.RUNNING, "in_progress", 200, 50, 0))
    progress.batch_polled(BATCH, BatchStatus(BatchState.RUNNING, "in_progress", 200, 150, 0))
    progress.request_passed_through("openai", "streaming", "Streaming cannot be batched.")
    progress.request_passed_through("openai", "streaming", "Streaming cannot be batched.")
    progress.request_served_from_journal("openai")
    progress.batch_finished(BATCH, BatchStatus(BatchState.COMPLETED, "completed", 200, 198, 2))
    progress.stop()


def test_the_live_display_shows_each_job_and_the_totals() -> None:
    console = recording_console()
    play_a_run(display.ProgressDisplay(live=True, console=console))
    text = console.export_text()
    (done,) = rows(text, "batch_abc")
    assert done.split() == ["openai", "gpt-4o-mini", "batch_abc", "completed", "200/200", "0s"]
    (resumed,) = rows(text, "msgbatch_def")
    assert resumed.split() == [
        "anthropic",
        "claude-haiku-4-5",
        "msgbatch_def",
        "resumed",
        "0/100",
        "0s",
    ]
    assert (
        "2 batch jobs (1 running), 300 requests batched, 2 passed through at full price, "
        "1 from the journal" in text
    )
    assert "submitted:" not in text  # no log lines in live mode


def test_the_live_display_shows_progress_while_running() -> None:
    console = recording_console()
    progress = display.ProgressDisplay(live=True, console=console)
    progress.batch_submitted(BATCH, resumed=False)
    progress.batch_polled(BATCH, BatchStatus(BatchState.RUNNING, "BATCH_STATE_RUNNING", 200, 50, 5))
    console.print(progress.render())
    (row,) = rows(console.export_text(), "batch_abc")
    assert row.split()[3:5] == ["running", "55/200"]


def test_the_live_display_on_a_narrow_console_stacks_the_job_columns() -> None:
    console = recording_console(width=70)
    progress = display.ProgressDisplay(live=True, console=console)
    progress.batch_submitted(BATCH, resumed=False)
    console.print(progress.render())
    text = console.export_text()
    (row,) = rows(text, "batch_abc")
    assert row.split() == ["openai", "batch_abc", "submitted", "0/200", "0s"]
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 70


def test_log_mode_prints_state_changes_only() -> None:
    console = recording_console(width=200)
    play_a_run(display.ProgressDisplay(live=False, console=console))
    assert console.export_text().splitlines() == [
        "batchling: openai batch batch_abc submitted: 200 requests to gpt-4o-mini",
        "batchling: following anthropic batch msgbatch_def from an earlier run "
        "(100 requests, claude-haiku-4-5)",
        "batchling: openai batch batch_abc validating: 0/200 done (0s)",
        "batchling: openai batch batch_abc in_progress: 50/200 done (0s)",
        "batchling: openai call sent in real time at full price (streaming); further ones of "
        "this kind are counted in the summary",
        "batchling: answering openai calls from the journal: results an earlier run already "
        "paid for",
        "batchling: openai batch batch_abc completed: 198/200 succeeded, 2 failed (0s)",
    ]


def test_a_failed_job_says_why() -> None:
    console = recording_console(width=200)
    progress = display.ProgressDisplay(live=False, console=console)
    progress.batch_submitted(BATCH, resumed=False)
    progress.batch_finished(
        BATCH, BatchStatus(BatchState.FAILED, "failed", 0, 0, 0, message="input file invalid")
    )
    last = console.export_text().splitlines()[-1]
    assert last == (
        "batchling: openai batch batch_abc failed: 0/200 succeeded, 0 failed (0s): "
        "input file invalid"
    )


def test_observer_calls_from_many_threads_are_counted_exactly() -> None:
    console = recording_console(width=200)
    progress = display.ProgressDisplay(live=True, console=console)
    progress.start()
    batches = [
        SubmittedBatch("openai", f"batch_{n}", "/v1/chat/completions", "gpt-4o-mini", 10)
        for n in range(40)
    ]

    def work(batch: SubmittedBatch) -> None:
        progress.batch_submitted(batch, resumed=False)
        for done in range(10):
            progress.batch_polled(batch, BatchStatus(BatchState.RUNNING, "in_progress", 10, done))
            progress.request_passed_through("openai", "streaming", "why")
        progress.batch_finished(batch, BatchStatus(BatchState.COMPLETED, "completed", 10, 10))

    threads = [threading.Thread(target=work, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    progress.stop()
    text = console.export_text()
    assert "40 batch jobs (0 running), 400 requests batched, 400 passed through" in text
    assert f"{len(batches) - display.MAX_LIVE_ROWS} finished jobs not shown" in text


def test_make_progress_picks_the_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    assert display.make_progress(False).live is False  # type: ignore[union-attr]
    forced = display.make_progress(True)
    assert forced is not None
    assert forced.live is True
    assert forced.console.is_terminal
    terminal = Console(file=io.StringIO(), force_terminal=True)
    monkeypatch.setattr(display, "stderr_console", lambda **_: terminal)
    monkeypatch.delenv("CI", raising=False)
    assert display.make_progress(None).live is True  # type: ignore[union-attr]
    monkeypatch.setenv("CI", "true")
    assert display.make_progress(None).live is False  # type: ignore[union-attr]
    monkeypatch.delenv("CI")
    pipe = Console(file=io.StringIO())
    monkeypatch.setattr(display, "stderr_console", lambda **_: pipe)
    assert display.make_progress(None).live is False  # type: ignore[union-attr]


def test_amounts_keep_their_significant_digits() -> None:
    assert display.format_usd(0) == "$0.00"
    assert display.format_usd(0.000015) == "<$0.0001"
    assert display.format_usd(0.0075) == "$0.0075"
    assert display.format_usd(12345.678) == "$12,345.68"
    assert display.format_elapsed(3.9) == "3s"
    assert display.format_elapsed(184) == "3m 04s"
    assert display.format_elapsed(7500) == "2h 05m"


def test_nothing_is_written_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    for progress in (display.make_progress(False), display.make_progress(None)):
        assert progress is not None
        play_a_run(progress)
    display.print_run_summary(RunReport(batched=1, batch_ids=["batch_x"]))
    display.print_dry_run_summary(plan_of((request("x"), JournalState.NEW)))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "batch_abc" in captured.err
    assert "batchling summary" in captured.err
    assert "dry run" in captured.err
