"""What batchling shows a person: the dry-run cost table, live progress, and the exit summary.

Everything goes to stderr: stdout belongs to the user's program.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Iterable

from rich import box
from rich.console import Console, Group, RenderableType
from rich.errors import LiveError
from rich.live import Live
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from batchling import pricing
from batchling.dryrun import CHARS_PER_TOKEN, DryRunPlan
from batchling.provider import BatchState, BatchStatus, SubmittedBatch
from batchling.report import RunReport

CI_ENV = "CI"
MAX_LIVE_ROWS = 12
"""The live table shows the running jobs and the latest finished ones, up to this many rows."""
WIDE_ENOUGH_FOR_BATCH_PRICE = 100
"""Consoles narrower than this get the dry-run table without its batch-price column."""
WIDE_ENOUGH_FOR_LIVE_COLUMNS = 100
"""Consoles narrower than this get the live table's provider, batch id and model in one column."""
MAX_LISTED_IDS = 10
"""The exit summary names this many batch ids, then counts the rest."""
_STATE_STYLES = {
    BatchState.RUNNING: "yellow",
    BatchState.COMPLETED: "green",
    BatchState.FAILED: "red",
    BatchState.EXPIRED: "red",
    BatchState.CANCELLED: "red",
}

_consoles: dict[bool, Console] = {}
_consoles_lock = threading.Lock()


def stderr_console(*, force_terminal: bool = False) -> Console:
    """The process-wide stderr console (one per mode, so that rich can nest live displays)."""
    with _consoles_lock:
        console = _consoles.get(force_terminal)
        if console is None:
            console = Console(stderr=True, force_terminal=True if force_terminal else None)
            _consoles[force_terminal] = console
        return console


# -- money and numbers ---------------------------------------------------------------------


def format_usd(amount: float) -> str:
    """Dollars with cents, four decimals below ten cents (`$0.0075`), `<$0.0001` below that."""
    if amount == 0:
        return "$0.00"
    if abs(amount) < 0.0001:
        return "<$0.0001"
    if abs(amount) < 0.1:
        return f"${amount:,.4f}"
    return f"${amount:,.2f}"


def format_elapsed(seconds: float) -> str:
    """`42s`, `3m 04s`, `2h 05m`."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def _estimate(provider: str, model: str, tokens: int) -> tuple[pricing.CostEstimate, str | None]:
    """The cost estimate, and the price table's error if a user table is broken."""
    try:
        return pricing.estimate_input_cost(provider, model, tokens), None
    except pricing.PriceTableError as exc:
        return pricing.CostEstimate(provider, model, tokens, None, None, None, None), str(exc)


def _price_note() -> str:
    note = f"USD list prices as of {pricing.prices_as_of()}, an estimate"
    if os.environ.get(pricing.PRICES_ENV):
        note += f" (with ${pricing.PRICES_ENV})"
    return note


# -- dry run -------------------------------------------------------------------------------


def print_dry_run_summary(plan: DryRunPlan, *, console: Console | None = None) -> None:
    """Print what a dry run saw, sending nothing.

    One row per (provider, endpoint, model): the new requests, the batch jobs they would make,
    their estimated input tokens, and their cost at real-time prices, at batch prices, and the
    saving ("unknown price" for models no price table knows). Requests the journal already
    knows are counted apart: they cost nothing. Calls that would go to real-time endpoints are
    listed below the table.
    """
    out = console or stderr_console()
    groups = list(plan)
    journaled = any(group.already_submitted or group.cached for group in groups)
    table = Table(
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    # Narrow terminals get no batch-price column: the saving says it.
    with_batch_price = out.width >= WIDE_ENOUGH_FOR_BATCH_PRICE
    table.add_column("Provider / model / endpoint", overflow="fold", min_width=16)
    for header in ("Requests", "Batches", "Tokens*", "Real-time", "Batch", "Saving"):
        if header == "Real-time":
            # "unknown price" may wrap on narrow terminals; amounts never do.
            table.add_column(header, justify="right", max_width=None if with_batch_price else 9)
        elif header != "Batch" or with_batch_price:
            table.add_column(header, justify="right", no_wrap=True)
    if journaled:
        table.add_column("Journaled†", justify="right", no_wrap=True)
    total = _PlanTotals()
    errors: set[str] = set()
    for group in groups:
        estimate, error = _estimate(group.provider, group.model, group.input_tokens)
        errors.update([error] if error else [])
        total.add(group.requests, group.batches, group.input_tokens, estimate)
        if estimate.realtime_usd is None or estimate.batch_usd is None:
            costs = ["unknown price" if group.requests else "-", "-", "-"]
        else:
            amounts = (estimate.realtime_usd, estimate.batch_usd)
            costs = [format_usd(amount) for amount in (*amounts, amounts[0] - amounts[1])]
        if not with_batch_price:
            del costs[1]
        row = [
            f"{escape(group.provider)} [bold]{escape(group.model or '?')}[/]\n"
            f"[dim]{escape(group.endpoint)}[/]",
            f"{group.requests:,}",
            f"{group.batches:,}",
            f"{group.input_tokens:,}",
            *costs,
        ]
        if journaled:
            row.append(f"{group.already_submitted:,} / {group.cached:,}")
        table.add_row(*row)
    if len(groups) > 1:
        table.add_section()
        mark = "+" if total.unknown else ""
        total_row = [
            "Total",
            f"{total.requests:,}",
            f"{total.batches:,}",
            f"{total.tokens:,}",
            *(format_usd(amount) + mark for amount in total.money(with_batch_price)),
        ]
        if journaled:
            submitted = sum(group.already_submitted for group in groups)
            total_row.append(f"{submitted:,} / {sum(group.cached for group in groups):,}")
        table.add_row(*total_row, style="bold")
    seen = plan.total_requests
    out.print(
        f"[bold]batchling dry run (nothing was sent):[/] {seen:,} batchable request{_s(seen)} "
        "seen; "
        f"{total.requests:,} would be sent in {total.batches:,} batch job{_s(total.batches)}.",
        highlight=False,
    )
    if groups:
        out.print(table)
    passed = sum(plan.passed_through.values())
    if passed:
        kinds = ", ".join(
            f"{provider} {kind}: {count:,}"
            for (provider, kind), count in sorted(plan.passed_through.items())
        )
        out.print(
            f"[bold]Would be sent in real time at full price:[/] {passed:,} ({escape(kinds)})",
            highlight=False,
        )
    notes = [
        f"* Input tokens, estimated at ~{CHARS_PER_TOKEN} characters/token; output tokens are "
        f"not included (batch jobs discount them too). {_price_note()}; override with "
        f"${pricing.PRICES_ENV}=prices.json or batchling.pricing.register_price().",
    ]
    if total.unknown:
        notes.append(
            f"+ {total.unknown:,} request{_s(total.unknown)} of models without a known price "
            "are not in the totals."
        )
    if journaled:
        notes.append(
            "† Already submitted by an earlier run / cached in the journal: followed or served, "
            "not paid again."
        )
    notes.extend(f"Price table problem: {error}" for error in sorted(errors))
    for note in notes:
        out.print(Text(note, style="dim"))


@dataclasses.dataclass(slots=True)
class _PlanTotals:
    requests: int = 0
    batches: int = 0
    tokens: int = 0
    realtime_usd: float = 0.0
    batch_usd: float = 0.0
    unknown: int = 0
    """New requests whose price is unknown (not in the money totals)."""

    def add(self, requests: int, batches: int, tokens: int, cost: pricing.CostEstimate) -> None:
        self.requests += requests
        self.batches += batches
        self.tokens += tokens
        if cost.realtime_usd is None or cost.batch_usd is None:
            self.unknown += requests
        else:
            self.realtime_usd += cost.realtime_usd
            self.batch_usd += cost.batch_usd

    def money(self, with_batch_price: bool) -> tuple[float, ...]:
        saving = self.realtime_usd - self.batch_usd
        if with_batch_price:
            return self.realtime_usd, self.batch_usd, saving
        return self.realtime_usd, saving


# -- exit summary --------------------------------------------------------------------------


def print_run_summary(report: RunReport, *, console: Console | None = None) -> None:
    """Print the one-screen summary of a `batchify()` block: requests batched and in which
    jobs, passed through at full price and why, served from the journal, failed, and the
    estimated saving."""
    out = console or stderr_console()
    if _nothing_happened(report):
        out.print(
            "batchling: no OpenAI, Anthropic or Gemini call was made inside batchify().",
            highlight=False,
        )
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    jobs = len(report.batch_ids)
    batched = f"{report.batched:,} request{_s(report.batched)} in {jobs:,} batch job{_s(jobs)}"
    if report.batch_ids:
        batched += ": " + _list_ids(report.batch_ids)
    grid.add_row("batched", batched)
    for label, ids, what in (
        ("resumed", report.resumed_batch_ids, "an earlier run submitted"),
        (
            "left running",
            report.left_running_batch_ids,
            "still running at the provider, not waited for (see the warning above)",
        ),
        ("cancelled", report.cancelled_batch_ids, "asked to cancel (block ended, or deadline)"),
    ):
        if ids:
            grid.add_row(label, f"{len(ids):,} job{_s(len(ids))} {what}: {_list_ids(ids)}")
    passed = report.passed_through_total
    real_time = f"{passed:,} at full price"
    if passed:
        kinds = ", ".join(
            f"{kind}: {count:,}" for kind, count in report.passed_through.most_common()
        )
        real_time += f" ({kinds})"
    grid.add_row("real time", real_time)
    if report.from_journal:
        grid.add_row(
            "from journal", f"{report.from_journal:,} (results an earlier run paid for; no cost)"
        )
    grid.add_row("failed", f"{report.failed:,}")
    saving = _saving_line(report)
    if saving is not None:
        grid.add_row("est. saved", saving)
    out.print(Rule("batchling summary", align="left", style="dim"))
    out.print(grid, highlight=False)


def _nothing_happened(report: RunReport) -> bool:
    counts = (report.batched, report.failed, report.from_journal, report.passed_through_total)
    return not any(counts) and not report.batch_ids and not report.resumed_batch_ids


def _saving_line(report: RunReport) -> str | None:
    if not report.batched_input_tokens:
        return None
    saved = 0.0
    unknown = 0
    errors: set[str] = set()
    for (provider, model), tokens in report.batched_input_tokens.items():
        estimate, error = _estimate(provider, model, tokens)
        if error is not None:
            errors.add(error)
        if estimate.saving_usd is None:
            unknown += report.batched_by_model.get((provider, model), 0) or 1
        else:
            saved += estimate.saving_usd
    line = f"{format_usd(saved)} vs real-time prices (input tokens only; {_price_note()})"
    if unknown:
        line += f"; {unknown:,} request{_s(unknown)} of models without a known price not counted"
    # A broken $BATCHLING_PRICES prices nothing: say why, as the dry run does.
    line += "".join(f". Price table problem: {error}" for error in sorted(errors))
    return line


def _list_ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_LISTED_IDS])
    if len(ids) > MAX_LISTED_IDS:
        shown += f" and {len(ids) - MAX_LISTED_IDS:,} more"
    return shown


def _s(count: int) -> str:
    return "" if count == 1 else "s"


# -- progress ------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Job:
    provider: str
    model: str
    batch_id: str
    size: int
    resumed: bool
    started: float
    state: BatchState = BatchState.RUNNING
    status: str = ""
    completed: int = 0
    failed: int = 0
    total: int = 0
    ended: float | None = None

    def elapsed(self, now: float) -> float:
        return (self.ended if self.ended is not None else now) - self.started

    def status_word(self) -> str:
        if self.state.is_terminal:
            # Providers' final words vary ("ended", "succeeded"); the state says it plainly.
            return str(self.state)
        if self.status:
            return _status_word(self.status)
        return "resumed" if self.resumed else "submitted"

    def done(self) -> str:
        total = self.total or self.size
        return f"{self.completed + self.failed:,}/{total:,}"


class ProgressDisplay:
    """Shows the batch jobs of a `batchify()` block on stderr as they progress.

    Live mode redraws a table (provider, model, batch id, status, done/total, elapsed) and the
    totals; log mode prints one line per state change. Implements `batchling.events.RunObserver`;
    its methods may be called from any thread.
    """

    def __init__(self, *, live: bool, console: Console | None = None) -> None:
        self.live = live
        self.console = console or stderr_console()
        self._lock = threading.Lock()
        self._jobs: dict[tuple[str, str], _Job] = {}
        self._passed_through = 0
        self._passed_kinds: set[tuple[str, str]] = set()
        self._from_journal = 0
        self._lifecycle = threading.Lock()
        self._live: Live | None = None
        self._started = False
        self._stopped = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Begin showing; live mode draws from the first event on, so a block without batch
        jobs leaves the screen alone."""
        with self._lifecycle:
            self._started = True
            self._stopped = False

    def stop(self) -> None:
        """Stop redrawing; the live table's final state stays on screen."""
        with self._lifecycle:
            self._stopped = True
            live, self._live = self._live, None
        if live is not None:
            live.stop()

    def _ensure_live(self) -> None:
        if not self.live:
            return
        with self._lifecycle:
            if self._live is not None or not self._started or self._stopped:
                return
            live = Live(
                console=self.console,
                get_renderable=self.render,
                refresh_per_second=4,
                transient=False,
                redirect_stdout=False,
                redirect_stderr=True,
            )
            try:
                live.start()
            except LiveError:
                # Another live display owns the console (rich < 14 cannot nest them).
                self.live = False
                return
            self._live = live

    def _log(self, line: str | None) -> None:
        if line is not None and not self.live:
            self.console.print(Text(line), soft_wrap=True)

    # -- RunObserver -----------------------------------------------------------------------

    def batch_submitted(self, batch: SubmittedBatch, *, resumed: bool) -> None:
        with self._lock:
            self._jobs[(batch.provider, batch.batch_id)] = _Job(
                batch.provider, batch.model, batch.batch_id, batch.size, resumed, time.monotonic()
            )
        if resumed:
            line = (
                f"batchling: following {batch.provider} batch {batch.batch_id} from an earlier "
                f"run ({batch.size:,} request{_s(batch.size)}, {batch.model})"
            )
        else:
            line = (
                f"batchling: {batch.provider} batch {batch.batch_id} submitted: "
                f"{batch.size:,} request{_s(batch.size)} to {batch.model}"
            )
        self._ensure_live()
        self._log(line)

    def batch_polled(self, batch: SubmittedBatch, status: BatchStatus) -> None:
        line = None
        with self._lock:
            job = self._job(batch)
            changed = status.provider_status != job.status
            self._update(job, status)
            if changed and not status.state.is_terminal:
                line = (
                    f"batchling: {batch.provider} batch {batch.batch_id} {job.status_word()}: "
                    f"{job.done()} done ({format_elapsed(job.elapsed(time.monotonic()))})"
                )
        self._ensure_live()
        self._log(line)

    def batch_finished(self, batch: SubmittedBatch, status: BatchStatus) -> None:
        with self._lock:
            job = self._job(batch)
            self._update(job, status)
            job.ended = time.monotonic()
            word = _status_word(status.provider_status)
            line = f"batchling: {batch.provider} batch {batch.batch_id} {status.state}"
            if word != str(status.state):
                line += f" ({word})"
            line += (
                f": {job.completed:,}/{job.total or job.size:,} succeeded, {job.failed:,} failed "
                f"({format_elapsed(job.elapsed(job.ended))})"
            )
            if status.message:
                line += f": {status.message}"
        self._ensure_live()
        self._log(line)

    def request_passed_through(self, provider: str, kind: str, reason: str) -> None:
        with self._lock:
            self._passed_through += 1
            first = (provider, kind) not in self._passed_kinds
            self._passed_kinds.add((provider, kind))
        self._ensure_live()
        if first:
            self._log(
                f"batchling: {provider} call sent in real time at full price ({kind}); further "
                "ones of this kind are counted in the summary"
            )

    def request_served_from_journal(self, provider: str) -> None:
        with self._lock:
            self._from_journal += 1
            first = self._from_journal == 1
        self._ensure_live()
        if first:
            self._log(
                f"batchling: answering {provider} calls from the journal: results an earlier "
                "run already paid for"
            )

    def _job(self, batch: SubmittedBatch) -> _Job:
        job = self._jobs.get((batch.provider, batch.batch_id))
        if job is None:
            job = self._jobs[(batch.provider, batch.batch_id)] = _Job(
                batch.provider, batch.model, batch.batch_id, batch.size, False, time.monotonic()
            )
        return job

    @staticmethod
    def _update(job: _Job, status: BatchStatus) -> None:
        job.state = status.state
        job.status = status.provider_status
        job.completed = status.completed
        job.failed = status.failed
        job.total = status.total

    # -- rendering -------------------------------------------------------------------------

    def render(self) -> RenderableType:
        """The live view: one row per batch job, then the totals."""
        now = time.monotonic()
        with self._lock:
            jobs = list(self._jobs.values())
            passed, from_journal = self._passed_through, self._from_journal
            rows = [
                (
                    job.provider,
                    job.model,
                    job.batch_id,
                    job.state,
                    job.status_word(),
                    job.done(),
                    format_elapsed(job.elapsed(now)),
                    job.resumed,
                )
                for job in _shown(jobs)
            ]
        table = Table(
            box=box.SIMPLE_HEAD,
            title="batchling",
            title_justify="left",
            collapse_padding=True,
            pad_edge=False,
        )
        # Narrow terminals get provider, batch id and model in one column, on two lines.
        wide = self.console.width >= WIDE_ENOUGH_FOR_LIVE_COLUMNS
        if wide:
            table.add_column("Provider", no_wrap=True)
            table.add_column("Model", overflow="fold", max_width=24)
            table.add_column("Batch id", overflow="fold")
        else:
            table.add_column("Batch job", overflow="fold")
        table.add_column("Status", no_wrap=True)
        table.add_column("Done/total", justify="right", no_wrap=True)
        table.add_column("Elapsed", justify="right", no_wrap=True)
        for provider, model, batch_id, state, status, done, elapsed, resumed in rows:
            label = Text(status, style=_STATE_STYLES[state])
            if resumed and status != "resumed":
                label.append(" (resumed)", style="dim")
            if wide:
                table.add_row(provider, model, batch_id, label, done, elapsed)
            else:
                job = Text(f"{provider} {batch_id}\n")
                job.append(model, style="dim")
                table.add_row(job, label, done, elapsed)
        running = sum(1 for job in jobs if job.ended is None)
        requests = sum(job.size for job in jobs)
        totals = Text(
            f"{len(jobs):,} batch job{_s(len(jobs))} ({running:,} running), {requests:,} "
            f"request{_s(requests)} batched, {passed:,} passed through at full price, "
            f"{from_journal:,} from the journal",
            style="bold",
        )
        if len(jobs) > len(rows):
            totals.append(f"; {len(jobs) - len(rows):,} finished jobs not shown", style="dim")
        return Group(table, totals)


def _status_word(provider_status: str) -> str:
    """`BATCH_STATE_RUNNING` reads as `running`; other providers' words stay as they are."""
    for prefix in ("BATCH_STATE_", "JOB_STATE_"):
        if provider_status.startswith(prefix):
            return provider_status.removeprefix(prefix).lower()
    return provider_status


def _shown(jobs: Iterable[_Job]) -> list[_Job]:
    """Running jobs first (oldest first), then the latest finished, at most `MAX_LIVE_ROWS`."""
    ordered = sorted(jobs, key=lambda job: (job.ended is not None, -(job.ended or -job.started)))
    return ordered[:MAX_LIVE_ROWS]


def wants_live(console: Console) -> bool:
    """Whether `progress=None` means live: stderr is a terminal and `$CI` is not set."""
    ci = os.environ.get(CI_ENV, "").strip().lower()
    in_ci = ci not in ("", "0", "false", "no")
    return console.is_terminal and not console.is_dumb_terminal and not in_ci


def make_progress(progress: bool | None) -> ProgressDisplay | None:
    """The display for `batchify(progress=...)`: `True` live (even off a terminal), `False`
    log lines, `None` live on a terminal outside CI and log lines otherwise."""
    if progress is True:
        return ProgressDisplay(live=True, console=stderr_console(force_terminal=True))
    console = stderr_console()
    if progress is False:
        return ProgressDisplay(live=False, console=console)
    return ProgressDisplay(live=wants_live(console), console=console)
