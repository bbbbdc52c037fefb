"""The whole suite: `python -m bench [--quick]` runs hot path, instruction counts,
catch-up, the target's COPY cost, latency, memory, the large streamed transaction and
files mode in turn with
their defaults (or their --quick sizes).
Run a single benchmark as `python -m bench.hotpath`, `python -m bench.instructions`,
`python -m bench.catchup`, `python -m bench.target`, `python -m bench.latency`,
`python -m bench.memory`, `python -m bench.bigtxn`, `python -m bench.files`, and the profiler as
`python -m bench.profile`."""

from __future__ import annotations

import argparse
import sys

from bench import bigtxn, catchup, files, hotpath, instructions, latency, memory, target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke test, well under a minute")
    args = parser.parse_args(argv)
    extra = ["--quick"] if args.quick else []
    status = 0
    for bench in (hotpath, instructions, catchup, target, latency, memory, bigtxn, files):
        status |= bench.main(extra)
    return status


if __name__ == "__main__":
    sys.exit(main())
