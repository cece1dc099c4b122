"""The `batchling` command: run programs with batching, and look after the journal and jobs."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime
import inspect
import io
import json
import sys
import types
import urllib.parse
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from batchling import __version__, journal
from batchling.api import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_BATCH_WINDOW_SECONDS,
    DEFAULT_COMPLETION_WINDOW,
    DEFAULT_POLL_INTERVAL_SECONDS,
    Batchify,
    batchify,
)
from batchling.api_keys import MissingAPIKeyError
from batchling.dryrun import DryRunFinished
from batchling.errors import PluginError
from batchling.plugins import (
    BUILT_IN,
    BUILTIN_PLUGINS,
    DISABLE_ENV,
    PluginInfo,
    get_providers,
    plugin_report,
)
from batchling.provider import ClientForJob, Provider

T = TypeVar("T")

SCRIPT_MODULE_NAME = "__batchling_script__"
"""The module name a script gets when `SCRIPT:FUNC` runs one of its functions."""
EXIT_UNCAUGHT = 1
EXIT_INTERRUPTED = 130
MAIN_HELP = """Run Python programs with their OpenAI, Anthropic and Gemini calls sent through
the providers' Batch APIs: same results, about half the price.

\b
Examples:
  batchling pipeline.py --input data.csv   run a whole script (short for `batchling run`)
  batchling pipeline.py:main               run one function of it, async or not
  batchling --dry-run pipeline.py          see what it would cost, sending nothing
  batchling demo                           try it offline, no API key needed
"""

RUN_HELP = """Run SCRIPT (or its function FUNC) with every OpenAI, Anthropic and Gemini SDK call it
makes sent through the providers' Batch APIs.

SCRIPT runs as `python SCRIPT` would run it: as `__main__`, with `sys.argv` set to
[SCRIPT, SCRIPT_ARGS...]. Everything after SCRIPT belongs to it, `--flags` included. With
SCRIPT:FUNC the script is imported (not run as `__main__`) and FUNC, async or not, is called
with no arguments inside `batchify()`. The script's exit code and errors come through as they
would without batchling. Progress and the summary go to stderr; stdout is the script's.

\b
Examples:
  batchling run pipeline.py --input data.csv
  batchling run --batch-window-seconds 10 pipeline.py:main
  batchling run --dry-run pipeline.py        prints what it would cost, sends nothing
  batchling --no-progress pipeline.py        `run` may be left out
"""


class ScriptNotFoundError(click.ClickException):
    """The script to run does not exist; exits 2, as `python missing.py` does."""

    exit_code = 2


class ScriptAwareGroup(click.Group):
    """A command group that reads `batchling [RUN OPTIONS] script.py ...` as `batchling run
    [RUN OPTIONS] script.py ...`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands:
            run_command = self.commands["run"]
            if looks_like_script(args[0]) or _is_option_of(run_command, ctx, args[0]):
                args = ["run", *args]
        return super().parse_args(ctx, args)


def _is_option_of(command: click.Command, ctx: click.Context, token: str) -> bool:
    name = token.split("=", 1)[0]
    return name != "--help" and any(
        name in param.opts for param in command.get_params(ctx) if isinstance(param, click.Option)
    )


def looks_like_script(token: str) -> bool:
    """Whether a command-line word names a script (`x.py`) or a script's function (`x.py:f`)."""
    return token.endswith(".py") or ".py:" in token


@click.group(cls=ScriptAwareGroup, help=MAIN_HELP)
@click.version_option(__version__, prog_name="batchling")
def cli() -> None:
    """The `batchling` command group."""


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `batchling` command."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="batchling")


# -- run -----------------------------------------------------------------------------------


@cli.command(
    help=RUN_HELP,
    short_help="Run a script, or one function of it, with its calls batched.",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help=f"Most requests in one batch job [default: {DEFAULT_BATCH_SIZE:,}].",
)
@click.option(
    "--batch-window-seconds",
    type=click.FloatRange(min=0),
    help="How long a queue collects calls after its first one before it becomes a job "
    f"[default: {DEFAULT_BATCH_WINDOW_SECONDS:g}].",
)
@click.option(
    "--poll-interval-seconds",
    type=click.FloatRange(min=0, min_open=True),
    help="First status poll of a job; later polls back off up to 2 minutes apart "
    f"[default: {DEFAULT_POLL_INTERVAL_SECONDS:g}].",
)
@click.option(
    "--completion-window",
    help=f"The jobs' completion window, e.g. 24h [default: {DEFAULT_COMPLETION_WINDOW}].",
)
@click.option(
    "--dry-run", is_flag=True, help="Send nothing; print the requests and their estimated cost."
)
@click.option("--no-cache", is_flag=True, help="Do not use the journal (no resume, no reuse).")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the journal in this directory [default: $BATCHLING_CACHE_DIR or the user cache].",
)
@click.option(
    "--strict", is_flag=True, help="Refuse calls that cannot be batched instead of sending them."
)
@click.option(
    "--no-progress", is_flag=True, help="Log lines at state changes only, no live display."
)
@click.option(
    "--deadline",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Send requests still unanswered this long after the start in real time (full price).",
)
@click.option(
    "--cancel-on-exit",
    is_flag=True,
    help="Cancel running jobs when the script fails or is interrupted.",
)
@click.argument("target", metavar="SCRIPT[:FUNC]")
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED, metavar="[SCRIPT_ARGS]...")
def run(
    target: str,
    script_args: tuple[str, ...],
    batch_size: int | None,
    batch_window_seconds: float | None,
    poll_interval_seconds: float | None,
    completion_window: str | None,
    dry_run: bool,
    no_cache: bool,
    cache_dir: Path | None,
    strict: bool,
    no_progress: bool,
    deadline: float | None,
    cancel_on_exit: bool,
) -> None:
    if target.startswith("-"):
        raise click.UsageError(f"No such option: {target}")
    if no_cache and cache_dir is not None:
        raise click.UsageError("--no-cache and --cache-dir contradict each other; pass one.")
    options: dict[str, Any] = {
        "batch_size": batch_size,
        "batch_window_seconds": batch_window_seconds,
        "poll_interval_seconds": poll_interval_seconds,
        "completion_window": completion_window,
        "deadline": deadline,
    }
    options = {name: value for name, value in options.items() if value is not None}
    options.update(
        dry_run=dry_run,
        cache=False if no_cache else (cache_dir if cache_dir is not None else True),
        strict=strict,
        progress=False if no_progress else None,
        cancel_on_exit=cancel_on_exit,
    )
    try:
        context = batchify(**options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    _check_journal_directory(options["cache"])
    script, function_name = split_target(target)
    path = Path(script)
    if not path.is_file():
        problem = "is a directory" if path.is_dir() else "not found"
        raise ScriptNotFoundError(f"Script {script!r} {problem}.")
    run_program(path.resolve(), [script, *script_args], function_name, context)


def split_target(target: str) -> tuple[str, str | None]:
    """`script.py:func` → (`script.py`, `func`); a path without a function → (path, None)."""
    script, colon, name = target.rpartition(":")
    if colon and script and all(part.isidentifier() for part in name.split(".")):
        return script, name
    return target, None


def _check_journal_directory(cache: bool | Path) -> None:
    """A journal directory that cannot be made is the command line's to report, before the
    script starts (the block would raise `JournalError` as the script's own error)."""
    path = journal.resolve_path(cache)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise click.UsageError(
            f"cannot keep batchling's journal in {path.parent} ({type(exc).__name__}: {exc}). "
            "Point --cache-dir (or $BATCHLING_CACHE_DIR) at a writable directory, or pass "
            "--no-cache to run without a journal (and without resume)."
        ) from None


def run_program(
    path: Path, argv: list[str], function_name: str | None, context: Batchify
) -> NoReturn:
    """Run the script (or one function of it) as `python` would, inside `context`, and exit
    with the exit code `python` would have."""
    with _as_main_program(path, argv):
        code = _compile(path)
        if function_name is None:

            def whole_script() -> None:
                with context:
                    _execute(code, path, "__main__")

            _as_python_would(path, whole_script)
        else:
            module = _as_python_would(path, lambda: _execute(code, path, SCRIPT_MODULE_NAME))
            function = _function(module, path, function_name)
            _as_python_would(path, lambda: _call(function, context))
    sys.exit(0)


def _as_python_would(path: Path, step: Callable[[], T]) -> T:
    """Run `step`; an exception it lets out is printed and exits as `python` would do it."""
    try:
        return step()
    except DryRunFinished:
        sys.exit(0)
    except PluginError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt as exc:
        _print_uncaught(exc, path)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        _print_uncaught(exc, path)
        sys.exit(EXIT_UNCAUGHT)


@contextlib.contextmanager
def _as_main_program(path: Path, argv: list[str]) -> Iterator[None]:
    """`sys.argv` and `sys.path[0]` as `python SCRIPT ARGS...` sets them, restored after."""
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = argv
    if sys.path:
        sys.path[0] = str(path.parent)
    else:
        sys.path.append(str(path.parent))
    try:
        yield
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path


def _compile(path: Path) -> types.CodeType:
    try:
        with io.open_code(str(path)) as source:
            text = source.read()
    except OSError as exc:
        raise ScriptNotFoundError(f"Cannot read script {str(path)!r}: {exc.strerror}.") from None
    try:
        return compile(text, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        # As `python` reports it: the error and where, without batchling's frames.
        sys.excepthook(type(exc), exc, None)
        sys.exit(EXIT_UNCAUGHT)


def _execute(code: types.CodeType, path: Path, module_name: str) -> types.ModuleType:
    """Run the script's code as module `module_name`, kept in `sys.modules` while it runs."""
    module = types.ModuleType(module_name)
    module.__file__ = str(path)
    module.__dict__.update(__cached__=None, __builtins__=builtins, __package__=None)
    module.__loader__ = None
    module.__spec__ = None
    previous = sys.modules.get(module_name)
    sys.modules[module_name] = module
    try:
        exec(code, module.__dict__)
    finally:
        if module_name == "__main__" and previous is not None:
            sys.modules[module_name] = previous
    return module


def _function(module: types.ModuleType, path: Path, name: str) -> Callable[[], Any]:
    target: Any = module
    for part in name.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise click.ClickException(f"{path.name} has no function {name!r}.")
    if not callable(target):
        raise click.ClickException(
            f"{path.name}:{name} is a {type(target).__name__}, not a function."
        )
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return target  # type: ignore[no-any-return]
    required = [
        parameter.name
        for parameter in signature.parameters.values()
        if parameter.default is inspect.Parameter.empty
        and parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if required:
        raise click.ClickException(
            f"{path.name}:{name} needs arguments ({', '.join(required)}) but is called with none: "
            "give them defaults, or run the whole script."
        )
    return target  # type: ignore[no-any-return]


def _call(function: Callable[[], Any], context: Batchify) -> None:
    """Call `function` inside `context`: `async with` for a coroutine function, `with` else."""
    if inspect.iscoroutinefunction(function):
        asyncio.run(_call_async(function, context))
        return
    with context:
        result = function()
        if inspect.isawaitable(result):
            asyncio.run(_await(result))


async def _call_async(function: Callable[[], Coroutine[Any, Any, Any]], context: Batchify) -> None:
    async with context:
        await function()


async def _await(awaitable: Any) -> None:
    await awaitable


def _print_uncaught(exc: BaseException, path: Path) -> None:
    """Print `exc` as `python` prints an uncaught exception: from the script's first frame."""
    traceback = exc.__traceback__
    entry = traceback
    while entry is not None and entry.tb_frame.f_code.co_filename != str(path):
        entry = entry.tb_next
    if entry is not None:
        exc = exc.with_traceback(entry)
    sys.excepthook(type(exc), exc, exc.__traceback__)


# -- cache ---------------------------------------------------------------------------------

_cache_dir_option = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The journal's directory [default: $BATCHLING_CACHE_DIR or the user cache].",
)


@cli.group(short_help="Inspect or clear the journal.")
def cache() -> None:
    """Inspect or clear the journal that makes re-runs free and crashes safe."""


@cache.command("info")
@_cache_dir_option
def cache_info(cache_dir: Path | None) -> None:
    """Where the journal is, how big, and what it holds."""
    path = _journal_path(cache_dir)
    if not path.exists():
        click.echo(f"journal:      {path} (not created yet)")
        return
    with _opened(path) as opened:
        stats = opened.stats()
    click.echo(f"journal:      {path}")
    click.echo(f"size:         {_bytes(stats['bytes'])}")
    click.echo(f"batch jobs:   {stats['submissions']:,} ({stats['running']:,} running)")
    click.echo(f"requests:     {stats['requests']:,} ({stats['results']:,} with results)")


@cache.command("clear")
@_cache_dir_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def cache_clear(cache_dir: Path | None, yes: bool) -> None:
    """Forget every journaled job and result (re-runs then pay again)."""
    path = _journal_path(cache_dir)
    if not path.exists():
        click.echo(f"Nothing to clear: no journal at {path}.")
        return
    with _opened(path) as opened:
        stats = opened.stats()
        if not yes:
            question = (
                f"Forget {stats['submissions']:,} batch jobs and {stats['requests']:,} requests "
                f"in {path}? Re-runs will send and pay for them again."
            )
            if stats["running"]:
                question += (
                    f" {stats['running']:,} job(s) still running will not be collected "
                    "(`batchling batches cancel --all-running` cancels them)."
                )
            click.confirm(question, abort=True)
        opened.clear()
    click.echo(f"Cleared {stats['submissions']:,} batch jobs and {stats['requests']:,} requests.")


def _journal_path(cache_dir: Path | None) -> Path:
    path = journal.resolve_path(cache_dir if cache_dir is not None else True)
    assert path is not None, "resolve_path(True or a path) always names a file"
    return path


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[journal.Journal]:
    opened = journal.Journal(path)
    try:
        yield opened
    finally:
        opened.close()


def _bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


# -- batches -------------------------------------------------------------------------------


@cli.group(short_help="List or cancel journaled batch jobs.")
def batches() -> None:
    """List or cancel the batch jobs in the journal."""


@batches.command("list")
@_cache_dir_option
@click.option("--running", is_flag=True, help="Only jobs that have not ended.")
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON array of the jobs, for scripts (`jq`...)."
)
def batches_list(cache_dir: Path | None, running: bool, as_json: bool) -> None:
    """The journaled batch jobs, newest first."""
    path = _journal_path(cache_dir)
    submissions: list[journal.Submission] = []
    if path.exists():
        states = (
            [journal.SubmissionState.SUBMITTING, journal.SubmissionState.RUNNING]
            if running
            else None
        )
        with _opened(path) as opened:
            submissions = opened.submissions(states=states)
    if as_json:
        click.echo(json.dumps([_job_record(submission) for submission in submissions], indent=2))
        return
    if not path.exists():
        click.echo(f"No batch jobs: no journal at {path}.")
        return
    if not submissions:
        click.echo(f"No{' running' if running else ''} batch jobs in {path}.")
        return
    table = Table(box=None, pad_edge=False)
    for header in ("Provider", "Batch id", "State", "Provider status", "Model"):
        table.add_column(header, no_wrap=True)
    table.add_column("Requests", justify="right", no_wrap=True)
    table.add_column("Created", no_wrap=True)
    # Which host: Groq, Together, Azure and gateways all run under the `openai` provider.
    table.add_column("Host", no_wrap=True)
    for submission in submissions:
        created = datetime.datetime.fromtimestamp(submission.created_at).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            submission.provider,
            submission.batch_id or f"(submitting: {submission.submission_id})",
            str(submission.state),
            submission.provider_status or "",
            submission.model,
            f"{submission.size:,}",
            created,
            _host(submission.base_url) or "-",
        )
    _print_whole(table)


def _host(base_url: str) -> str:
    """The host (and port) of a base URL, without any credentials written into it."""
    return urllib.parse.urlsplit(journal.storable_url(base_url)).netloc


def _job_record(submission: journal.Submission) -> dict[str, Any]:
    """What `batches list --json` says of a job."""

    def utc(timestamp: float) -> str:
        return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat()

    return {
        "provider": submission.provider,
        "batch_id": submission.batch_id,
        "submission_id": submission.submission_id,
        "state": str(submission.state),
        "provider_status": submission.provider_status,
        "endpoint": submission.endpoint,
        "model": submission.model,
        "requests": submission.size,
        "host": _host(submission.base_url) or None,
        "created_at": utc(submission.created_at),
        "updated_at": utc(submission.updated_at),
    }


def _print_whole(table: Table) -> None:
    """One line per row, however narrow the terminal (or an 80-column pipe): ids stay whole
    for copying and for `grep`, and a terminal narrower than the table wraps its lines."""
    console = Console(highlight=False)
    needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
    console.width = max(console.width, needed)
    console.print(table)


@batches.command("cancel")
@click.argument("batch_ids", nargs=-1, metavar="[BATCH_ID]...")
@click.option("--all-running", is_flag=True, help="Cancel every journaled job still running.")
@_cache_dir_option
def batches_cancel(batch_ids: tuple[str, ...], all_running: bool, cache_dir: Path | None) -> None:
    """Ask the providers to cancel batch jobs from the journal.

    The API key comes from the host's usual environment variable (OPENAI_API_KEY,
    AZURE_OPENAI_API_KEY with OPENAI_API_VERSION, TOGETHER_API_KEY, ANTHROPIC_API_KEY...): it
    must be the key the job was created with. Lines a job already finished may still be billed.
    """
    if not batch_ids and not all_running:
        raise click.UsageError("Name the batch ids to cancel, or pass --all-running.")
    path = _journal_path(cache_dir)
    if not path.exists():
        raise click.ClickException(f"No journal at {path}: batchling has no job to cancel there.")
    with _opened(path) as opened:
        wanted: list[tuple[str, journal.Submission | None]] = [
            (batch_id, opened.find_submission(batch_id)) for batch_id in batch_ids
        ]
        if all_running:
            listed = {key for key, _ in wanted}
            live = [journal.SubmissionState.RUNNING, journal.SubmissionState.SUBMITTING]
            wanted += [
                (key, submission)
                for submission in opened.submissions(states=live)
                # A submission whose job id was never recorded is named by its own id.
                if (key := submission.batch_id or submission.submission_id) not in listed
            ]
        jobs = [(key, submission, opened.custom_ids(submission.submission_id) if submission else [])
                for key, submission in wanted]  # fmt: skip
    if not jobs:
        click.echo("No running batch jobs in the journal.")
        return
    failures = asyncio.run(_cancel_all(jobs, path))
    if failures:
        sys.exit(1)


async def _cancel_all(
    jobs: list[tuple[str, journal.Submission | None, list[str]]], path: Path
) -> int:
    failures = 0
    for key, submission, custom_ids in jobs:
        try:
            message = await _cancel_one(key, submission, custom_ids, path)
        except click.ClickException as exc:
            failures += 1
            click.echo(f"{key}: {exc.format_message()}", err=True)
        else:
            click.echo(message)
    return failures


async def _cancel_one(
    key: str, submission: journal.Submission | None, custom_ids: list[str], path: Path
) -> str:
    if submission is None:
        raise click.ClickException(
            f"not in the journal ({path}); `batchling batches list` shows the jobs it has."
        )
    if submission.state is journal.SubmissionState.ENDED:
        return f"{key}: already ended ({submission.provider_status or 'ended'}); nothing to cancel."
    provider = _providers().get(submission.provider)
    if provider is None:
        raise click.ClickException(
            f"the {submission.provider!r} provider is not loaded: install it (pip install "
            f"'batchling[{submission.provider}]'), or, if BATCHLING_DISABLE_PLUGINS names its "
            "plugin, leave it out of that variable for this command."
        )
    try:
        if isinstance(provider, ClientForJob):
            client = provider.client_for_job(submission.base_url, submission.info)
        else:
            client = provider.default_client(submission.base_url)
    except MissingAPIKeyError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        raise click.ClickException(
            f"cannot make a {submission.provider} client from the environment: {exc}"
        ) from None
    try:
        batch_id = submission.batch_id or await _created_job(provider, client, submission)
        if batch_id is None:
            return (
                f"{key}: {submission.provider} has no job for this submission (it was "
                "interrupted before the provider created one): nothing to cancel. A re-run of "
                "the program looks again, and sends its requests if there is still none."
            )
        batch = provider.reattach(
            batch_id, submission.info, client=client, template=None, custom_ids=custom_ids
        )
        if submission.batch_id is None:
            # Found again: journaled as a re-run journals it, which then follows the job.
            with _opened(path) as opened:
                opened.mark_submitted(
                    submission.submission_id,
                    batch_id,
                    {**submission.info, **provider.describe(batch)},
                )
        await provider.cancel(batch)
    except click.ClickException:
        raise
    except Exception as exc:
        raise click.ClickException(
            f"the provider refused to cancel {submission.provider} job "
            f"{submission.batch_id or submission.submission_id}: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        await _close(client)
    # As `cancel_on_exit` does: a re-run collects what the job finished and sends the rest
    # again, instead of failing on a job cancelled on purpose.
    with _opened(path) as opened:
        opened.mark_cancel_requested(batch_id)
    return (
        f"cancelling {submission.provider} batch {batch_id} ({submission.size:,} "
        "requests); lines it already finished may still be billed."
    )


async def _created_job(
    provider: Provider, client: Any, submission: journal.Submission
) -> str | None:
    """The id of the job a submission interrupted before its id was recorded created, looked
    up at the provider as a re-run does."""
    try:
        return await provider.find_submission(
            submission.submission_id,
            client=client,
            template=None,
            size=submission.size,
            since=submission.created_at,
        )
    except Exception as exc:
        raise click.ClickException(
            f"could not look up the job of submission {submission.submission_id} at "
            f"{submission.provider}: {type(exc).__name__}: {exc}"
        ) from None


async def _close(client: Any) -> None:
    for name in ("aclose", "close"):
        method = getattr(client, name, None)
        if callable(method):
            with contextlib.suppress(Exception):
                result = method()
                if inspect.isawaitable(result):
                    await result
            return


# -- plugins and demo ----------------------------------------------------------------------


@cli.command(short_help="List the loaded providers and what they wrap.")
def plugins() -> None:
    """The plugins batchling loaded (built-in and third-party, with the distribution and
    version they come from), the providers they brought and the SDK methods those wrap. Set
    BATCHLING_DISABLE_PLUGINS=NAME,... to keep plugins from loading."""
    providers = _providers()
    infos, blocked = _loading(plugin_report)
    if not providers:
        click.echo(
            "No provider loaded: install an SDK batchling supports, e.g. "
            "pip install 'batchling[openai]'."
        )
    builtin_names = {name for name, _, _ in BUILTIN_PLUGINS}
    for info in sorted(infos, key=lambda info: info.name):
        for name in info.providers:
            provider = providers[name]
            replaces = (
                " (replaces the built-in)"
                if name in builtin_names and info.source != BUILT_IN
                else ""
            )
            click.echo(f"{name}  [{_source(info)}]{replaces}")
            for target in provider.targets:
                hook = " (hook)" if target.hook else ""
                click.echo(f"  {target.module}.{target.qualname}{hook}")
    observers = [info for info in infos if not info.providers and info.observer_hooks]
    if observers:
        click.echo("\nplugins without a provider:")
        for info in sorted(observers, key=lambda info: info.name):
            hooks = ", ".join(hook.removeprefix("batchling_") for hook in info.observer_hooks)
            click.echo(f"  {info.name}  [{_source(info)}]  observes: {hooks}")
    if blocked:
        click.echo(f"\nblocked by {DISABLE_ENV}: {', '.join(blocked)}")


def _source(info: PluginInfo) -> str:
    if info.source == BUILT_IN:
        return f"built-in: {info.module}"
    return f"{info.source}, plugin {info.name!r}: {info.module}"


def _providers() -> dict[str, Provider]:
    return _loading(get_providers)


_Loaded = TypeVar("_Loaded")


def _loading(load: Callable[[], _Loaded]) -> _Loaded:
    """`load()`, with a plugin that fails to load reported as a command error."""
    try:
        return load()
    except PluginError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command(short_help="Try it offline: no API key, no network.")
@click.option(
    "--requests",
    type=click.IntRange(min=1, max=100_000),
    default=300,
    show_default=True,
    help="How many calls the example makes, spread across the providers.",
)
@click.option("--no-progress", is_flag=True, help="Log lines instead of the live display.")
def demo(requests: int, no_progress: bool) -> None:
    """Run the product-copy example offline: a few hundred OpenAI, Anthropic and Gemini calls
    against batchling's bundled fake provider, batched, with the live display. No API key and
    no network needed."""
    from batchling.demo import DemoUnavailableError, run_demo

    try:
        run_demo(requests, progress=False if no_progress else None)
    except DemoUnavailableError as exc:
        raise click.ClickException(str(exc)) from None
