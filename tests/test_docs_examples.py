"""Every ```python block of the documentation runs, so the docs cannot rot.

Collected: each ```python fence in `docs/**/*.md` and `README.md`, including fences indented
inside admonitions or content tabs. Each block is one test, run as written in a fresh module
namespace (`__name__ == "__main__"`) against its own `FakeProviderServer`, with the environment
variables the official SDKs read pointing their no-argument clients at it (`AsyncOpenAI()`,
`AsyncAnthropic()`, `genai.Client()`, `AsyncAzureOpenAI(api_version=...)`) and an empty journal
(`$BATCHLING_CACHE_DIR`). Real keys and base URLs in the environment are removed first: no
block can reach a real provider. A block passes when it runs to the end (or exits with code 0,
as a dry run does) without an exception or a warning.

Marked on the line before the fence (keep these few):

- `<!-- not-run: why -->`: a fragment or a snippet that needs a real provider; not run.
- `<!-- requires: module[, module] -->`: runs where those modules are installed (the framework
  examples), skipped elsewhere.
- `<!-- file: path/in/the/repo -->`: a listing of (part of) a file of this repository; not run,
  but it must appear in that file verbatim, so it cannot drift from the code it shows.

Fragments that are not programs (diffs, signatures, shell) use other fences (`diff`, `text`,
`bash`). Blocks in pages whose owners have not marked them yet get their marker from
`PENDING_MARKERS` (by file and a line of the block): add the marker to the page, drop the entry.

Examples are also checked to be batched: a block that uses `batchify` and does not mention
`NotBatchedWarning` must make no real-time call to its fake server. And every `batchling ...`
command line of a ```bash block must name real commands and options.

Speed: a batch job on the fake server ends at once, so what takes time is `batchify()`'s
defaults (2 s window, first poll after 10 s). The blocks show the defaults a reader should use;
this module runs them with `batchify.__kwdefaults__` shortened (window 0.2 s, first poll 0.05 s),
which changes when queues flush and jobs are polled, not what is batched or returned. Blocks
that pass their own timings keep them.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib.util
import os
import re
import shlex
import warnings
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

import batchling
import batchling.api
from batchling import pricing
from batchling.cli import cli, looks_like_script
from batchling.providers import openai_compatible
from batchling.testing import FakeProviderServer

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})\s*(?P<info>[^\s`]*)")
NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(?P<why>\S.*?)\s*-->\s*$")
REQUIRES = re.compile(r"^\s*<!--\s*requires:\s*(?P<modules>[\w.,\s]+?)\s*-->\s*$")
FILE = re.compile(r"^\s*<!--\s*file:\s*(?P<path>[\w./-]+)\s*-->\s*$")
MARKER = re.compile(r"^\s*<!--\s*(not-run|requires|file)\b")

PENDING_MARKERS: list[tuple[str, str, str]] = [
    ("README.md", "batchify(\n    *,", "<!-- not-run: the signature with its defaults -->"),
    ("docs/plugins.md", "register(MyProvider())", "<!-- not-run: a fragment of a plugin -->"),
    ("docs/plugins.md", 'reply = await client.complete("hello")', "<!-- not-run: a sketch -->"),
    (
        "docs/plugins.md",
        '"""The batchling provider plugin for the toy echo SDK',
        "<!-- file: tests/plugin_package/batchling_echo/plugin.py -->",
    ),
    ("docs/plugins.md", "from batchling_echo.echo_sdk import", "<!-- requires: batchling_echo -->"),
]
"""The marker a block should carry, for pages this module does not own yet:
(file, text in the block, marker). Once the page carries its markers, drop the entries."""

FAST_DEFAULTS = {"batch_window_seconds": 0.2, "poll_interval_seconds": 0.05}
"""Long enough a window that the calls of each round of a multi-step example share a job."""

THIRD_PARTY_WARNINGS = (
    # LiteLLM's TypedDicts with `ReadOnly` items, warned about by pydantic inside LiteLLM.
    r"ignore:Items? .* on TypedDict class '\w+' (is|are) using the `ReadOnly` qualifier"
    ":UserWarning",
    # google-genai subclasses aiohttp.ClientSession when aiohttp is installed (LiteLLM brings it).
    "ignore:Inheritance class AiohttpClientSession from ClientSession:DeprecationWarning",
)

PROVIDER_ENV_PREFIXES = ("OPENAI_", "ANTHROPIC_", "GOOGLE_", "GEMINI_", "AZURE_OPENAI_")
AZURE_API_VERSION = "2024-10-21"


@dataclasses.dataclass(frozen=True)
class Block:
    path: Path
    line: int
    """1-based line of the opening fence."""
    source: str
    not_run: str | None
    requires: tuple[str, ...] = ()
    listing_of: str | None = None
    """A repository file this block shows (part of); compared, not run."""

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def collect(path: Path) -> Iterator[Block]:
    """The ```python blocks of one Markdown file, with the marker on the line before each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, ticks = opening["indent"], opening["ticks"]
        end = index + 1
        while end < len(lines) and not (
            lines[end].strip().startswith(ticks) and lines[end].strip().strip(ticks[0]) == ""
        ):
            end += 1
        if opening["info"] in ("python", "py"):
            body = [line[len(indent) :] if line.startswith(indent) else line.lstrip()
                    for line in lines[index + 1 : end]]  # fmt: skip
            relative = str(path.relative_to(ROOT))
            source = "\n".join(body) + "\n"
            before = next((line for line in reversed(lines[:index]) if line.strip()), "")
            if not MARKER.match(before):
                pending = [m for f, text, m in PENDING_MARKERS if f == relative and text in source]
                before = pending[0] if pending else before
            not_run, requires, listing = NOT_RUN.match(before), REQUIRES.match(before), None
            if MARKER.match(before) and not (not_run or requires):
                listing = FILE.match(before)
                if listing is None:
                    raise ValueError(f"{relative}:{index + 1}: malformed marker {before!r}")
            yield Block(
                path=path,
                line=index + 1,
                source=source,
                not_run=not_run["why"] if not_run else None,
                requires=tuple(
                    name.strip() for name in requires["modules"].split(",") if name.strip()
                )
                if requires
                else (),
                listing_of=listing["path"] if listing else None,
            )
        index = end + 1


BLOCKS = [block for path in DOC_FILES for block in collect(path)]


def test_the_docs_have_examples_and_few_exceptions() -> None:
    assert (ROOT / "mkdocs.yml").is_file()
    runnable = [block for block in BLOCKS if block.not_run is None]
    assert len(runnable) >= 20, [block.name for block in BLOCKS]
    # Exceptions stay exceptions.
    assert len(BLOCKS) - len(runnable) <= 6, [b.name for b in BLOCKS if b.not_run is not None]


@pytest.fixture
def docs_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cache_dir: Path
) -> Iterator[FakeProviderServer]:
    """A fake provider for the SDKs' no-argument clients, an empty journal, fast defaults."""
    for name in list(os.environ):
        if name.startswith(PROVIDER_ENV_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.delenv("BATCHLING_PRICES", raising=False)
    monkeypatch.setenv("CI", "1")  # no live display, whatever the terminal
    # Frameworks: LiteLLM would fetch its price map from the internet at import; DSPy would keep
    # its cache in the home directory.
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.setenv("DSPY_CACHEDIR", str(tmp_path / "dspy-cache"))
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(
        batchling.api.batchify,
        "__kwdefaults__",
        {**batchling.api.batchify.__kwdefaults__, **FAST_DEFAULTS},
    )
    registered_hosts = list(openai_compatible._registered)
    registered_prices = dict(pricing._registered)
    with FakeProviderServer() as server:
        for name, value in {
            "OPENAI_BASE_URL": server.openai_base_url,
            "OPENAI_API_KEY": "sk-docs-example",
            "ANTHROPIC_BASE_URL": server.anthropic_base_url,
            "ANTHROPIC_API_KEY": "sk-ant-docs-example",
            "GOOGLE_GEMINI_BASE_URL": server.gemini_base_url,
            "GEMINI_API_KEY": "gemini-docs-example",
            "AZURE_OPENAI_ENDPOINT": server.azure_endpoint,
            "AZURE_OPENAI_API_KEY": "azure-docs-example",
            "OPENAI_API_VERSION": AZURE_API_VERSION,
        }.items():
            monkeypatch.setenv(name, value)
        yield server
    openai_compatible._registered[:] = registered_hosts
    pricing._registered.clear()
    pricing._registered.update(registered_prices)


@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
@pytest.mark.filterwarnings(THIRD_PARTY_WARNINGS[0])
@pytest.mark.filterwarnings(THIRD_PARTY_WARNINGS[1])
def test_the_example_runs(block: Block, docs_environment: FakeProviderServer) -> None:
    if block.not_run is not None:
        pytest.skip(f"not run: {block.not_run}")
    if block.listing_of is not None:
        shown = (ROOT / block.listing_of).read_text(encoding="utf-8")
        assert block.source.strip() in shown, f"{block.name} differs from {block.listing_of}"
        return
    missing = [name for name in block.requires if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}, which is not installed")
    code = compile(block.source, block.name, "exec", dont_inherit=True)
    namespace = {"__name__": "__main__", "__file__": str(block.path)}
    exit_code: object = None
    with warnings.catch_warnings():
        # A client a snippet leaves open is closed by the garbage collector, as in any short
        # program; Python does not show these warnings by default, and they are not the docs'.
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            exec(code, namespace)
        except SystemExit as exit_:  # a dry run ends the program with code 0
            exit_code = exit_.code
        finally:
            namespace.clear()
            gc.collect()
    assert exit_code in (0, None), f"{block.name} exited with {exit_code!r}"
    if "batchify" in block.source and "NotBatchedWarning" not in block.source:
        # Examples show batching: none may quietly pay the real-time price.
        assert docs_environment.stats.realtime_calls == 0, docs_environment.stats.realtime_paths


def command_lines() -> Iterator[tuple[str, list[str]]]:
    """Every `batchling ...` line of the ```bash blocks, as (where, words after `batchling`)."""
    for path in DOC_FILES:
        lines = path.read_text(encoding="utf-8").splitlines()
        in_bash = False
        for number, line in enumerate(lines, start=1):
            fence = FENCE.match(line)
            if fence is not None:
                in_bash = not in_bash and fence["info"] in ("bash", "console", "sh", "shell")
                continue
            words = shlex.split(line.strip().removeprefix("$ "), comments=True) if in_bash else []
            if words[:1] == ["batchling"]:
                yield f"{path.relative_to(ROOT)}:{number}", words[1:]


COMMAND_LINES = list(command_lines())


def test_the_docs_show_the_command_line() -> None:
    assert len(COMMAND_LINES) >= 10


@pytest.mark.parametrize(("where", "words"), COMMAND_LINES, ids=[w for w, _ in COMMAND_LINES])
def test_the_docs_name_real_cli_options(where: str, words: list[str]) -> None:
    command: click.Command = cli
    if words and isinstance(command, click.Group) and words[0] not in command.commands:
        words = ["run", *words]  # `batchling [RUN OPTIONS] script.py ...`
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        name = words.pop(0)
        assert name in command.commands, f"{where}: no command {name!r}"
        command = command.commands[name]
    known = {"--help", "--version"} | {
        option
        for param in command.params
        if isinstance(param, click.Option)
        for option in (*param.opts, *param.secondary_opts)
    }
    for word in words:
        if looks_like_script(word):
            break  # what follows belongs to the script
        if word.startswith("-"):
            assert word.split("=", 1)[0] in known, f"{where}: {command.name} has no {word}"
