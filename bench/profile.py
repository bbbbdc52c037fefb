"""Where `streamer run --once` spends its time on a catch-up backlog.

    python -m bench.profile [--rows 200000] [--txn-rows 1000] [--tool py-spy|cprofile] [--rate 200]

py-spy (default; `pip install py-spy`) samples every thread of the process, including the
writer thread; only samples where a thread was running Python or native code are counted
(idle waits are not), so the shares are of on-CPU samples. cProfile sees only the main
thread. The raw profile is kept in bench/results/.
"""

from __future__ import annotations

import argparse
import pstats
import re
import shutil
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    RESULTS_DIR,
    checkpoint,
    clusters,
    create_source,
    load_backlog,
    log,
    markdown_table,
    run_checked,
    run_timed,
    scratch_dir,
    streamer_cmd,
    streamer_env,
)

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")
RATE_HZ = 200


def short(frame: str) -> str:
    """`func (path:line)` -> `func (module/file.py)`, path trimmed to the package."""
    match = FRAME.match(frame)
    if not match:
        return frame
    path = match.group("file")
    for marker in ("/site-packages/", "/lib/python3", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('func')} ({path})"


def module_of(frame: str) -> str:
    """The package (or, inside streamer, the module) a shortened frame belongs to."""
    match = FRAME.match(frame)
    path = match.group("file") if match else frame
    if path.startswith("streamer/"):
        return path.removesuffix(".py")
    if path.startswith("<"):
        return "python runtime (importlib etc.)"
    return path.split("/", 1)[0].removesuffix(".py")


def summarize_raw(raw: str, top: int) -> dict[str, Any]:
    """Self and inclusive shares per function, and per thread, from py-spy's collapsed
    stacks (`thread;outer;...;leaf count`, thread first because of --threads)."""
    self_counts: Counter[str] = Counter()
    module_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    per_thread: dict[str, Counter[str]] = {}
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread, frames = frames[0], [short(f) for f in frames[1:]]
        total += count
        threads[thread] += count
        if frames:
            self_counts[frames[-1]] += count
            module_counts[module_of(frames[-1])] += count
        thread_name = thread.split(": ", 1)[-1]
        mine = per_thread.setdefault(thread_name, Counter())
        for name in {f for f in frames if "(streamer/" in f and not f.startswith("<module>")}:
            incl_counts[name] += count
            mine[name] += count
        if any(f.startswith("_find_and_load ") for f in frames):
            mine["(importing modules)"] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "threads": share(threads),
        "self": share(self_counts),
        "self_by_module": share(module_counts),
        "inclusive": share(incl_counts),
        "inclusive_by_thread": {name: share(c) for name, c in per_thread.items()},
    }


def run_py_spy(cwd: Path, env: dict[str, str], out: Path, timeout: float, rate: int) -> float:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    cmd = [
        py_spy,
        "record",
        "--format",
        "raw",
        "--threads",
        "--nonblocking",
        "--rate",
        str(rate),
        "-o",
        str(out),
        "--",
        *streamer_cmd("run", "--once"),
    ]
    timed = run_timed(cmd, env, cwd, timeout)
    if timed.returncode != 0:
        raise RuntimeError(f"py-spy/streamer failed:\n{timed.output[-3000:]}")
    return timed.seconds


def run_cprofile(cwd: Path, env: dict[str, str], out: Path, timeout: float, rate: int) -> float:
    # `python -m cProfile -m streamer` writes nothing: the entry point ends with os._exit.
    script = (
        "import cProfile, sys; from streamer.cli import main; "
        "sys.argv = ['streamer', 'run', '--once']; "
        f"cProfile.run('code = main()', {str(out)!r})"
    )
    cmd = [sys.executable, "-c", script]
    timed = run_timed(cmd, env, cwd, timeout)
    if timed.returncode != 0:
        raise RuntimeError(f"cProfile/streamer failed:\n{timed.output[-3000:]}")
    return timed.seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--txn-rows", type=int, default=1000)
    parser.add_argument("--tool", choices=("py-spy", "cprofile"), default="py-spy")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument(
        "--rate", type=int, default=RATE_HZ, help="py-spy samples/s (raise for short runs)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--quick", action="store_true", help="smoke test: 5,000 rows")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = 5000
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = "txt" if args.tool == "py-spy" else "prof"
    out = RESULTS_DIR / f"profile-{args.tool}-{stamp}.{suffix}"
    with clusters() as (source, target), scratch_dir() as cwd:
        source_url = create_source(source)
        target_url = target.createdb("app")
        env = streamer_env(source_url, target_url, "streamer")
        run_checked(streamer_cmd("init"), env, cwd)
        load_backlog(source_url, args.rows, args.txn_rows, args.seed)
        checkpoint(source_url, target_url)
        log(f"profiling streamer run --once over {args.rows:,} rows with {args.tool}")
        runner = run_py_spy if args.tool == "py-spy" else run_cprofile
        seconds = runner(cwd, env, out, args.timeout, args.rate)
    print(f"\n## Profile of streamer run --once, {args.rows:,} rows x {args.txn_rows}/txn\n")
    print(f"wall {seconds:.1f} s (under the profiler); raw profile: {out}\n")
    if args.tool == "cprofile":
        pstats.Stats(str(out)).sort_stats("tottime").print_stats(args.top)
        return 0
    summary = summarize_raw(out.read_text(), args.top)
    busy = summary["samples"] / (args.rate * seconds)
    print(
        f"{summary['samples']:,} on-CPU samples at {args.rate} Hz = {busy:.2f} busy threads on "
        "average; shares below are % of on-CPU samples\n"
    )
    print(markdown_table(("thread", "%"), summary["threads"]))
    print()
    print(
        markdown_table(("self time by package / streamer module", "%"), summary["self_by_module"])
    )
    print()
    print(markdown_table(("self time: function (file)", "%"), summary["self"]))
    print()
    for thread, rows in summary["inclusive_by_thread"].items():
        print()
        print(markdown_table((f"{thread}: inclusive, streamer functions", "%"), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
