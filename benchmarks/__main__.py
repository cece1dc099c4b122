"""``python -m benchmarks [--quick]``: measure batchling and write benchmarks/RESULTS.md.

Every figure is a ratio against a baseline measured in the same run. Heavy runs happen in fresh
subprocesses against the fake provider server running in another process (127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks import idle, latency, profile, reference
from benchmarks._server import ServerProcess

HERE = os.path.dirname(os.path.abspath(__file__))

FULL = {"openai": 100_000, "anthropic": 20_000, "gemini": 20_000}
REPEATS_FULL = 3
"""Scale runs of each mode, alternating: a run's garbage collector passes fall differently
from one run to the next (the floor's wall time moves by a fifth), so medians are compared."""
_MEDIAN_KEYS = ("wall_s", "cpu_s", "gc_s", "peak_rss_mb", "baseline_rss_mb", "after_complete_s")
QUICK = {"openai": 10_000, "anthropic": 2_000, "gemini": 2_000}
# (provider, n, batch_size) runs that show a small batch_size splitting the work.
SPLIT_FULL = [("openai", 10_000, 3_000), ("anthropic", 6_000, 2_500), ("gemini", 6_000, 2_500)]
SPLIT_QUICK = [("openai", 3_000, 1_000), ("anthropic", 2_000, 800), ("gemini", 2_000, 800)]
# (provider, n, filler characters per prompt) runs whose payload passes a byte limit: OpenAI's
# 200 MB per job (the job is split), Gemini's 20 MB inline payload (the job is uploaded as a file).
BYTES = [("openai", 5_000, 41_000), ("gemini", 2_000, 11_000)]
# (calls, texts per call): `embeddings.create` calls whose inputs pass OpenAI's 50,000 embedding
# inputs per job long before its 50,000 requests.
EMBEDDINGS = (2_000, 50)
POLL = 0.05
WINDOW = 0.5


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _jobs(lines_per_job: list[int]) -> str:
    """'2: 50,000, 50,000' (jobs: lines in each), or 'none'."""
    if not lines_per_job:
        return "none"
    return f"{len(lines_per_job)}: " + ", ".join(f"{lines:,}" for lines in lines_per_job)


def _reference_overpaid(label: str, run: dict[str, Any]) -> list[str]:
    """A note when the reference implementation submitted more lines than it had requests."""
    submitted = sum(run.get("batches", []))
    if submitted <= run["n"]:
        return []
    answered = (
        "and every caller got its answer" if run.get("ok") else "and no caller got its answer"
    )
    return [
        f"{label}: 0.1.0a3 put {submitted:,} lines into batch jobs for {run['n']:,} requests "
        f"(each request paid for {submitted / run['n']:.1f} times) {answered}."
    ]


def scale_run(
    provider: str, mode: str, n: int, *, batch_size: int = 50_000, extra: list[str] | None = None
) -> dict[str, Any]:
    """One `benchmarks.scale` worker in a fresh process, against a fresh server process."""
    with ServerProcess() as server:
        started = time.perf_counter()
        completed = subprocess.run(
            [
                sys.executable, "-m", "benchmarks.scale", "--provider", provider,
                "--mode", mode, "--n", str(n), "--url", server.url, "--poll", str(POLL),
                "--window", str(WINDOW), "--batch-size", str(batch_size), *(extra or []),
            ],
            capture_output=True, text=True,
        )  # fmt: skip
        if completed.returncode != 0:
            raise RuntimeError(f"{provider} {mode} n={n} failed:\n{completed.stderr[-3000:]}")
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        stats = server.stats()
    mine = [batch for batch in stats["batches"] if batch["provider"] == provider]
    result["process_s"] = time.perf_counter() - started
    result["batches"] = [batch["lines"] for batch in mine]
    result["batch_bytes"] = [batch["bytes"] for batch in mine]
    result["files_uploaded"] = stats["providers"][provider]["files_uploaded"]
    result["realtime_calls"] = stats["realtime_calls"]
    result["http_requests"] = stats["http_requests"]
    if mine and result.get("last_resume_monotonic"):
        result["after_complete_s"] = result["last_resume_monotonic"] - max(
            batch["ready_at_monotonic"] for batch in mine
        )
    return result


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median wall time, with each measured figure replaced by its median over the
    runs; `walls` keeps every run's wall time."""
    ordered = sorted(runs, key=lambda run: run["wall_s"])
    merged = dict(ordered[len(ordered) // 2])
    for key in _MEDIAN_KEYS:
        values = sorted(run[key] for run in runs if run.get(key) is not None)
        if values:
            merged[key] = statistics.median(values)
    merged["walls"] = [run["wall_s"] for run in ordered]
    return merged


def _wall(run: dict[str, Any]) -> str:
    """A median wall time, with the range of the runs it is the median of."""
    walls = run.get("walls") or [run["wall_s"]]
    if len(walls) == 1:
        return f"{run['wall_s']:.1f} s"
    return f"{run['wall_s']:.1f} s ({min(walls):.1f}–{max(walls):.1f})"


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = ""
    try:
        import psutil

        memory = f"{psutil.virtual_memory().total / 2**30:.1f} GiB"
    except ImportError:
        pass
    versions = {}
    for package in ("batchling", "openai", "anthropic", "google-genai", "httpx2", "pydantic",
                    "wrapt"):  # fmt: skip
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "-"
    commit = ""
    try:
        commit = subprocess.run(
            ["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", HERE, "status", "--porcelain", "--", "../src"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        if dirty:
            commit += " + uncommitted changes in src/"
    except (OSError, subprocess.CalledProcessError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
        "commit": commit,
        "load_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about 3 minutes)")
    parser.add_argument("--no-profile", action="store_true", help="skip the pyinstrument run")
    parser.add_argument("--no-reference", action="store_true", help="skip batchling==0.1.0a3")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    parser.add_argument("--json", default="", help="also write the raw results here")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick, "sizes": sizes}
    results["date"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")

    log("1/5 idle overhead")
    results["idle"] = idle.run(quick=args.quick)

    repeats = 1 if args.quick else REPEATS_FULL
    log(f"2/5 scale (floor, then batchling, per provider; {repeats} runs of each)")
    results["scale"] = {}
    results["repeats"] = repeats
    for provider, n in sizes.items():
        modes = (
            ("floor", "caller-floor", "batchling")
            if provider == "openai"
            else ("floor", "batchling")
        )
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for repeat in range(repeats):
            for mode in modes:
                log(f"    {provider} {mode} n={n} (run {repeat + 1}/{repeats})")
                runs[mode].append(scale_run(provider, mode, n))
        results["scale"][provider] = {mode: median_run(found) for mode, found in runs.items()}

    log("3/5 splitting with a small batch_size")
    results["split"] = []
    for provider, n, batch_size in SPLIT_QUICK if args.quick else SPLIT_FULL:
        log(f"    {provider} n={n} batch_size={batch_size}")
        run = scale_run(provider, "batchling", n, batch_size=batch_size)
        run["batch_size"] = batch_size
        results["split"].append(run)
    for provider, n, pad in BYTES:
        log(f"    {provider} n={n} with {pad:,}-character prompts (byte limits)")
        run = scale_run(provider, "batchling", n, extra=["--pad", str(pad)])
        run["pad"] = pad
        results["split"].append(run)
    calls, texts = EMBEDDINGS
    log(f"    openai n={calls} embeddings.create calls of {texts} texts (embedding inputs limit)")
    run = scale_run("openai", "batchling", calls, extra=["--embedding-inputs", str(texts)])
    run["embedding_inputs"] = texts
    results["split"].append(run)

    log("4/5 latency (simulated clock, and one block with the default polling policy)")
    results["latency"] = latency.run(quick=args.quick)

    if not args.no_profile:
        try:
            import pyinstrument  # noqa: F401
        except ImportError:
            log("5/5 skipped: pyinstrument is not installed")
            results["profile_skipped"] = (
                "pyinstrument is not installed here (it belongs in the `bench` dependency group)"
            )
        else:
            log(f"5/5 pyinstrument profile of the openai run (n={sizes['openai']})")
            results["profile"] = profile.run(sizes["openai"])
    if not args.no_reference:
        ref_n = 2_000 if args.quick else 20_000
        log(f"    reference batchling==0.1.0a3 (n={ref_n})")
        results["reference"] = reference.run(ref_n, quick=args.quick)

    results["machine"]["load_end"] = os.getloadavg()
    results["elapsed_s"] = time.perf_counter() - started
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    with open(args.output, "w") as handle:
        handle.write(render(results))
    log(f"wrote {args.output} in {results['elapsed_s']:.0f} s")


# -- report ------------------------------------------------------------------------------------


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}×" if base else "-"


IDLE_TIMING_NOISE_PCT = 1.5
"""How far the timed idle difference of unchanged code moves between runs (seen: -1.3 … +1.4 %)."""


def _verdict(ratio: float, target: float) -> str:
    return "yes" if ratio <= target else "**no**"


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    v = m["versions"]
    out: list[str] = []
    add = out.append
    add("# batchling benchmarks\n")
    add(
        "Written by `python -m benchmarks`"
        + (" --quick" if r["quick"] else "")
        + f" (`nox -s bench`) on {r['date']}, in {r['elapsed_s'] / 60:.1f} min. Every ratio is "
        "against a baseline measured in the same run. Do not edit by hand: re-run.\n"
    )
    add(
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}, {m['os']}, Python "
        f"{m['python']}. Load average at start / end: "
        f"{m['load_start'][0]:.1f} / {m['load_end'][0]:.1f}"
        + (
            " (**the machine was shared with other work: wall times are inflated and noisy; "
            "CPU-time ratios are the reliable figures**)"
            if max(m["load_start"][0], m["load_end"][0]) > (m["cores"] or 1) * 0.75
            else ""
        )
        + "."
    )
    add(
        f"- batchling {v['batchling']} ({m['commit']}); openai {v['openai']}, anthropic "
        f"{v['anthropic']}, google-genai {v['google-genai']}, httpx2 {v['httpx2']}, pydantic "
        f"{v['pydantic']}, wrapt {v['wrapt']}.\n"
    )

    # -- summary table
    add("## Summary\n")
    add("| what | batchling | baseline | ratio | target | met |")
    add("|---|---|---|---|---|---|")
    w = r["idle"]["wrapper"]
    for name, cell in r["idle"]["calls"].items():
        if cell["overhead_pct"] < 1:
            met = "yes"
        elif cell["overhead_pct"] < IDLE_TIMING_NOISE_PCT:
            met = "within the timing's noise"
        else:
            met = "**no**"
        spread = cell["per_process_pct"]
        add(
            f"| idle, timed: one `{name}` call outside `batchify()` (CPU µs/call, median of "
            f"{cell['pairs']} block pairs in {cell['processes']} processes) "
            f"| {cell['on_us']:.0f} µs | {cell['off_us']:.0f} µs uninstalled "
            f"| {cell['overhead_pct']:+.2f} % (95 % CI of the median "
            f"{cell['overhead_ci_low_pct']:+.2f} … {cell['overhead_ci_high_pct']:+.2f} %; "
            f"per process {min(spread):+.2f} … {max(spread):+.2f} %) | < 1 % | {met} |"
        )
    add(
        f"| idle: the wrapper alone (calling wrapped `AsyncAPIClient.request`) "
        f"| {w['on_ns']:.0f} ns | {w['off_ns']:.0f} ns | +{w['added_ns']:.0f} ns/call | - | - |"
    )
    for name, cell in r["idle"]["calls"].items():
        extra = cell["extra_calls"]
        wrapped = sum(n for where, n in extra.items() if where.startswith("batchling_wrapper "))
        added_us = wrapped * w["added_ns"] / 1000
        share = added_us / cell["off_us"]
        runs_more = ", ".join(f"`{where}` ×{n:g}" for where, n in extra.items())
        add(
            f"| idle, exact: what one `{name}` call pays (functions that run more often "
            f"installed, by cProfile: {runs_more or 'none'}; the wrapper's cost for each wrapped "
            f"method) | +{added_us:.2f} µs | {cell['off_us']:.0f} µs | +{100 * share:.2f} % "
            f"| < 1 % | {'yes' if share < 0.01 else '**no**'} |"
        )
    for provider, runs in r["scale"].items():
        b, f = runs["batchling"], runs["floor"]
        n = f"{b['n']:,}"
        add(
            f"| scale: {n} {provider} calls, wall time | {_wall(b)} | {_wall(f)} "
            f"floor | {_ratio(b['wall_s'], f['wall_s'])} | ≤ 1.2× "
            f"| {_verdict(b['wall_s'] / f['wall_s'], 1.2)} |"
        )
        add(
            f"| scale: {n} {provider} calls, CPU time of the client process | {b['cpu_s']:.1f} s "
            f"({1e6 * b['cpu_s'] / b['n']:.0f} µs/call) | {f['cpu_s']:.1f} s "
            f"({1e6 * f['cpu_s'] / f['n']:.0f} µs/req) | {_ratio(b['cpu_s'], f['cpu_s'])} "
            f"| (≤ 1.2×) | {_verdict(b['cpu_s'] / f['cpu_s'], 1.2)} |"
        )
        caller = runs.get("caller-floor")
        if caller:
            add(
                f"| scale: {n} {provider} calls, wall time against the caller-shaped floor "
                f"| {_wall(b)} | {_wall(caller)} caller-shaped floor "
                f"| {_ratio(b['wall_s'], caller['wall_s'])} | - | - |"
            )
        growth = _ratio(
            b["peak_rss_mb"] - b["baseline_rss_mb"], f["peak_rss_mb"] - f["baseline_rss_mb"]
        )
        add(
            f"| scale: {n} {provider} calls, peak RSS | {b['peak_rss_mb']:.0f} MB "
            f"| {f['peak_rss_mb']:.0f} MB | {_ratio(b['peak_rss_mb'], f['peak_rss_mb'])} "
            f"(above imports: {growth}) "
            f"| ≤ 1.5× | {_verdict(b['peak_rss_mb'] / f['peak_rss_mb'], 1.5)} |"
        )
    sim = r["latency"]["simulated"]
    add(
        f"| latency: polls for a batch that takes 1 h (default policy, simulated clock) "
        f"| {sim['1h']['polls_median']:.0f} polls | - | - | small | "
        f"{'yes' if sim['1h']['polls_median'] <= 60 else '**no**'} |"
    )
    spread = sim["uniform_1m_24h"]
    add(
        f"| latency: completion → poll that sees it, default policy, jobs of 1 min … 24 h "
        f"| mean {spread['wait_mean_s']:.0f} s, p95 {spread['wait_p95_s']:.0f} s, "
        f"max {spread['wait_max_s']:.0f} s | - | - | - | - |"
    )
    add("")
    add(
        "*Idle*: the SDK clients answer from an in-process transport, so a call costs only what "
        "the SDK itself does. Timed: blocks of 25 calls alternate between wrappers installed and "
        "uninstalled, the arms taking turns to go first, a few untimed calls after each switch "
        "(changing a class's attributes makes the interpreter re-learn the call sites that read "
        "them), in several processes. Timing cannot settle a fraction of a percent here: the "
        "timed difference of the same code moves by up to about "
        f"±{IDLE_TIMING_NOISE_PCT} % from one run to the next, the same way in all of a run's "
        "processes (installed, which runs strictly more code, has come out faster). Exact: "
        "cProfile counts the functions one call runs in each state; only batchling's wrapper and "
        "its `ContextVar` read run more often, so what an idle call pays is the wrapper's cost "
        "(timed on its own, 200,000 calls) for each wrapped method on its path.\n"
    )
    add(
        "*Floor*: a minimal hand-written script doing the same batch workflow with the same SDK "
        "(build the JSONL or request list, upload, create, poll every "
        f"{POLL} s, download, parse each line into the SDK's type: "
        "`ChatCompletion.model_validate`, the SDK's `messages.batches.results()`, Gemini inline "
        "responses), splitting at the provider's request limit and running the jobs "
        "concurrently. batchling runs `asyncio.gather` of N ordinary SDK calls inside "
        f"`batchify(batch_window_seconds={WINDOW}, "
        f"poll_interval_seconds={POLL}, progress=False, cache=<temp dir>)`. Each run is a fresh "
        "process; the fake provider server (`batchling.testing.FakeProviderServer`, completes "
        "immediately) runs in another process. Both modes import the same modules (all three "
        "SDKs and batchling) before the baseline RSS is read. Wall time includes the server's "
        "own work (validating the input, generating the replies), which is the same for both. "
        "Where a run does not fill a job (the 20,000-call runs), batchling waits its "
        f"{WINDOW} s batch window for more calls before submitting (counted from the first "
        "call it reads: reading the rest takes part of it); the floor does not. "
        + (
            f"Scale figures are medians over {r['repeats']} runs of each mode, the modes "
            "taking turns (the range of the wall times in brackets): where the collector's "
            "passes fall differs from run to run, and moves the floor's wall time by up to a "
            "fifth."
            if r.get("repeats", 1) > 1
            else "Each scale figure is a single run (`--quick`)."
        )
        + "\n"
    )

    # -- per-request cost in context
    add("### Where batchling's per-call cost comes from\n")
    oa = r["scale"].get("openai")
    if oa:
        add(
            f"| {oa['batchling']['n']:,}-call run | wall | CPU | of it, garbage collection "
            "| CPU without it | peak RSS |"
        )
        add("|---|---|---|---|---|---|")
        for mode, label in (
            ("floor", "floor (one hand-written batch workflow)"),
            ("caller-floor", "caller-shaped floor (the same, awaited by N gathered calls)"),
            ("batchling", "batchling (N ordinary `chat.completions.create` calls)"),
        ):
            run = oa.get(mode)
            if run is None:
                continue
            gc_s = run.get("gc_s", 0.0)
            add(
                f"| {label} | {run['wall_s']:.1f} s | {run['cpu_s']:.1f} s "
                f"({1e6 * run['cpu_s'] / run['n']:.0f} µs/call) | {gc_s:.1f} s "
                f"| {1e6 * (run['cpu_s'] - gc_s) / run['n']:.0f} µs/call "
                f"| {run['peak_rss_mb']:.0f} MB |"
            )
        sdk_call = r["idle"]["calls"]["openai"]["off_us"]
        add(
            "\nThe floor never pays for what calling code is made of: one coroutine, task and "
            "future per call, alive until the batch ends. The caller-shaped floor pays exactly "
            "that and nothing more (no journal, no SDK call path). What stays alive makes "
            "Python's collector run full passes over a growing heap that frees nothing, which is "
            "why garbage collection is a large share of both floors. batchling keeps that heap "
            "out of the collector's way while many calls wait (`batchling.collector`: what the "
            "program built before the block, the survivors of each full pass while at least "
            "5,000 calls wait or are about to start, and each job's answers are frozen with "
            "`gc.freeze()` and given back once the calls are answered), so its runs spend far "
            "less time collecting than either floor.\n"
        )
        add(
            "Inside a batched call, batchling skips the SDK's per-call work where it provably "
            "changes nothing (for scale: the same call sent in real time over an in-process "
            f"transport costs {sdk_call:.0f} µs, idle benchmark): `chat.completions.create` and "
            "`messages.create` bodies are built from their keyword arguments (no argument "
            "transform, no request options, no HTTP request), the client's identity is worked "
            "out once per client, plain answers are validated straight into the SDK's model "
            "while a finished job's lines are routed, with Python's collector paused for that "
            "loop, result lines go through pydantic-core's JSON codec, the journal is read "
            "once per loop turn, claims a job's requests in one SQLite statement and stores its "
            "results in a thread of its own while they are routed (SQLite reads them as JSON "
            "documents, without the GIL), and a Gemini request's text-only parts are written "
            "to the wire form directly (google-genai's converter looks each of a part's fields "
            "up by walking all of them). Each shortcut is checked against the SDK's own result "
            "in the test suite (`BATCHLING_VERIFY_FAST_PATHS=1`).\n"
        )
        add(
            "The calls of a `gather` are read 100 an event-loop turn, in order: a full job is "
            "submitted, and the provider works on it, while the calls after it are still read. "
            "Here that overlaps the fake server's work on the first job of 50,000 with reading "
            "the second half of the calls; the floor, which has no calls to read, submits both "
            "jobs at once.\n"
        )

    # -- splitting
    add("## Splitting\n")
    add("| provider | requests | batch_size | batch jobs (lines each) | input bytes per job | "
        "files uploaded | real-time calls |")  # fmt: skip
    add("|---|---|---|---|---|---|---|")
    rows = [(p, runs["batchling"]) for p, runs in r["scale"].items()]
    rows += [(run["provider"], run) for run in r["split"]]
    for provider, run in rows:
        size = f"{run.get('batch_size', 50_000):,}"
        if run.get("pad"):
            size += (
                f" (prompts of {run['pad'] / 1000:.0f} kB, peak RSS {run['peak_rss_mb']:.0f} MB)"
            )
        if run.get("embedding_inputs"):
            size += (
                f" (`embeddings.create` of {run['embedding_inputs']} texts each: "
                f"{run['n'] * run['embedding_inputs']:,} inputs)"
            )
        add(
            f"| {provider} | {run['n']:,} | {size} | {_jobs(run['batches'])} | "
            f"{', '.join(f'{x / 1e6:.1f} MB' for x in run['batch_bytes'])} | "
            f"{run['files_uploaded']} | {run['realtime_calls']} |"
        )
    add(
        "\nProvider limits batchling applies: OpenAI 50,000 requests / 200 MB per job, Anthropic "
        "100,000 / 256 MB, Gemini 100,000 per job with inline payloads up to 20 MB (larger "
        "jobs are uploaded as a JSONL file). The 100,000-request OpenAI run is split by the "
        "request limit; the runs with long prompts pass OpenAI's 200 MB per job (split by "
        "bytes) and Gemini's 20 MB inline limit (uploaded as a file); the embeddings run passes "
        "OpenAI's 50,000 embedding inputs per job (split by inputs).\n"
    )

    # -- latency
    add("## Latency added\n")
    add(
        f"Default policy: first poll {sim['poll_interval_seconds']:.0f} s after submission, then "
        f"×1.5 per poll, capped at {sim['cap']:.0f} s, ±10 % jitter (`batchling.backoff.delays`, "
        "as `Scheduler._wait_until_done` uses it), replayed on a simulated clock:\n"
    )
    add("| job duration | polls (median / max) | completion → poll that sees it (mean / max) |")
    add("|---|---|---|")
    for label in ("1m", "10m", "1h", "24h"):
        cell = sim[label]
        add(
            f"| {label} | {cell['polls_median']:.0f} / {cell['polls_max']} "
            f"| {cell['wait_mean_s']:.0f} s / {cell['wait_max_s']:.0f} s |"
        )
    md = r["latency"]["measured_default"]
    add(
        f"\nMeasured with the default policy: a block of {md['n']:,} OpenAI calls against the "
        f"fake server set to complete each job {md['batch_delay_s']:.0f} s after creation: the "
        f"last caller resumed **{md['added_latency_s']:.1f} s** after the job became complete "
        f"(the first poll comes {sim['poll_interval_seconds']:.0f} s after submission).\n"
    )
    add(
        "Post-completion work at scale (job complete → last caller resumed, poll every "
        f"{POLL} s, so this is download + parse + routing + building each caller's object):\n"
    )
    add("| provider | requests | batchling | floor | ratio |")
    add("|---|---|---|---|---|")
    for provider, runs in r["scale"].items():
        b, f = runs["batchling"], runs["floor"]
        if "after_complete_s" in b and "after_complete_s" in f:
            ratio = _ratio(b["after_complete_s"], f["after_complete_s"])
            add(
                f"| {provider} | {b['n']:,} | {b['after_complete_s']:.1f} s "
                f"| {f['after_complete_s']:.1f} s | {ratio} |"
            )
    add("")

    # -- profile
    prof = r.get("profile")
    if prof:
        add(f"## Profile: {prof['n']:,} OpenAI calls (pyinstrument)\n")
        add(
            f"A separate run under pyinstrument ({prof['sample_count']:,} samples, "
            f"{prof['duration_s']:.0f} s wall, {prof['cpu_s']:.0f} s CPU: the profiler's hook "
            "roughly doubles CPU time, so read shares, not seconds), with the garbage collector "
            "off: its passes, timed in the table above, would otherwise be charged to whichever "
            "function allocated last. Shares are of the whole run.\n"
        )
        add("| work inside the run | share |")
        add("|---|---|")
        for label, share in prof["sdk_shares"].items():
            add(f"| {label} | {share:.1f} % |")
        add("\nbatchling functions by inclusive time:\n")
        add("| where | function | share |")
        add("|---|---|---|")
        for row in prof["batchling_inclusive"]:
            add(f"| `{row['where']}` | `{row['function']}` | {row['share_pct']:.1f} % |")
        add("\nHottest functions by own time (anywhere):\n")
        add("| where | function | share |")
        add("|---|---|---|")
        for row in prof["self_time"]:
            add(f"| `{row['where']}` | `{row['function']}` | {row['share_pct']:.1f} % |")
        add("")

    if r.get("profile_skipped"):
        add(f"## Profile\n\nNot run: {r['profile_skipped']}.\n")

    # -- reference
    ref = r.get("reference")
    if ref:
        add("## Reference implementation: `batchling==0.1.0a3` from PyPI\n")
        if ref.get("versions"):
            rv = ref["versions"]
            add(
                f"Installed in a separate venv: Python {rv['python']}, batchling "
                f"{rv['batchling']}, openai {rv['openai']}, anthropic {rv['anthropic']}, "
                f"google-genai {rv['google-genai']}. 0.1.0a3 hooks `httpx` and `aiohttp` and "
                "recognises providers by hostname, so the SDK clients keep their default hosts "
                "and its own Batch API calls are redirected to the fake server on 127.0.0.1 (a "
                "resolver guard refuses any other host). openai 3.x and anthropic ≥ 1 send "
                "through `httpx2`, which it does not hook: it runs only with openai 2.x and "
                "anthropic 0.x.\n"
            )
        add("| provider | requests | wall | CPU | peak RSS | batch jobs (lines each) | result |")
        add("|---|---|---|---|---|---|---|")
        notes = list(ref.get("notes", []))
        for run in ref["runs"]:
            notes += _reference_overpaid(run["provider"], run)
            if run.get("ok"):
                add(
                    f"| {run['provider']} | {run['n']:,} | {run['wall_s']:.1f} s "
                    f"| {run['cpu_s']:.1f} s ({1e6 * run['cpu_s'] / run['n']:.0f} µs/call) "
                    f"| {run['peak_rss_mb']:.0f} MB | {_jobs(run['batches'])} | ok |"
                )
            else:
                add(
                    f"| {run['provider']} | {run['n']:,} | - | - | - | "
                    f"{_jobs(run.get('batches', []))} | **cannot run**: `{run['error'][:160]}` |"
                )
        py311 = ref.get("py311")
        if py311:
            label = f"openai on Python {py311['python']}"
            notes += _reference_overpaid(label, py311)
            status = "ok" if py311.get("ok") else f"**fails**: `{py311['error'][:160]}`"
            add(
                f"| {label} | {py311['n']:,} | - | - | - | "
                f"{_jobs(py311.get('batches', []))} | {status} |"
            )
        for note in notes:
            add(f"\n- {note}")
        add(
            "\nFor comparison, this run's batchling (CPU per call): "
            + "; ".join(
                f"{p} {runs['batchling']['n']:,} calls, "
                f"{1e6 * runs['batchling']['cpu_s'] / runs['batchling']['n']:.0f} µs/call CPU"
                for p, runs in r["scale"].items()
            )
            + ".\n"
        )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
