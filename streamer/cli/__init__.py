"""Command line: argument parsing, env fallback, exit codes. No business logic here."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from streamer import __version__, _speedups
from streamer.cli.files import FILES_RUN_OPTIONS, add_files_options
from streamer.config import DEFAULT_BATCH_SIZE, DEFAULT_BATCH_TIMEOUT_MS, Settings, load_settings
from streamer.errors import EXIT_RUNTIME, EXIT_USAGE, StreamerError
from streamer.ops.commands import COMMANDS
from streamer.runtime.logs import configure_logging

log = logging.getLogger("streamer")

# flag dest -> (flag, env, help)
COMMON_OPTIONS: tuple[tuple[str, str, str, str], ...] = (
    (
        "source",
        "--source",
        "SOURCE_DATABASE_URL",
        "source (data lake) URL; falls back to DATALAKE_DATABASE_URL",
    ),
    (
        "target",
        "--target",
        "TARGET_DATABASE_URL",
        "target (application) URL; falls back to DATABASE_URL",
    ),
    ("slot", "--slot", "STREAMER_SLOT", "replication slot name (default: streamer)"),
    (
        "publication",
        "--publication",
        "STREAMER_PUBLICATION",
        "publication name (default: streamer)",
    ),
    (
        "source_table",
        "--source-table",
        "STREAMER_SOURCE_TABLE",
        "source table (default: public.raw_transactions)",
    ),
    (
        "target_schema",
        "--target-schema",
        "STREAMER_TARGET_SCHEMA",
        "schema of the target tables (default: public)",
    ),
    (
        "batch_size",
        "--batch-size",
        "STREAMER_BATCH_SIZE",
        f"max rows per target transaction (default: {DEFAULT_BATCH_SIZE})",
    ),
    (
        "batch_timeout_ms",
        "--batch-timeout-ms",
        "STREAMER_BATCH_TIMEOUT_MS",
        f"max wait before a partial batch is written (default: {DEFAULT_BATCH_TIMEOUT_MS})",
    ),
    (
        "slot_failover",
        "--slot-failover",
        "STREAMER_SLOT_FAILOVER",
        "auto|on|off: create the slot with failover, so PostgreSQL 17+ standbys "
        "synchronize it (default: auto, on for 17+)",
    ),
    (
        "copy_format",
        "--copy-format",
        "STREAMER_COPY_FORMAT",
        "auto|text: how rows are copied into the target (default: auto, binary COPY where "
        "the values and column types allow; text: always COPY text)",
    ),
    (
        "metrics_host",
        "--metrics-host",
        "STREAMER_METRICS_HOST",
        "metrics listen address (default: 127.0.0.1)",
    ),
    (
        "metrics_port",
        "--metrics-port",
        "STREAMER_METRICS_PORT",
        "metrics port, 0 disables (default: 9188)",
    ),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2, like our own usage errors
        self.exit(EXIT_USAGE, f"streamer: error: {message} (see `streamer --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    # --verbose and --log-format work before or after the command name; SUPPRESS keeps a
    # subcommand's default from overwriting a value given before it.
    shared = _Parser(add_help=False)
    shared.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        default=argparse.SUPPRESS,
        help="debug logging; tracebacks on errors",
    )
    shared.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=argparse.SUPPRESS,
        help="log format (default: text) [env STREAMER_LOG_FORMAT]",
    )
    parser = _Parser(
        prog="streamer",
        parents=[shared],
        description="Stream raw_transactions inserts from a logical replication slot into "
        "a normalized transactions table, exactly once.",
        epilog="Flags override environment variables; a .env file in the working directory "
        "is read too.",
    )
    parser.add_argument(
        "--version", action="version", version=f"streamer {__version__} {_speedups.IMPLEMENTATION}"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, text: str, options: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text, parents=[shared])
        if options:
            for dest, flag, env, help_text in COMMON_OPTIONS:
                p.add_argument(flag, dest=dest, metavar=env, help=f"{help_text} [env {env}]")
        return p

    init = command("init", "create publication, slot, target tables and checkpoint (idempotent)")
    init.add_argument(
        "--mode",
        metavar="STREAMER_MODE",
        help="files: only the target tables of files mode [env STREAMER_MODE]",
    )
    add_files_options(init)
    init.add_argument(
        "--backfill",
        default="all",
        metavar="{all,unprocessed,none}",
        help="copy rows already in the source when the slot is created: all "
        "(default), only the legacy poller's unprocessed ones, or none",
    )
    command("resync", "rebuild a lost slot: new slot + snapshot, copy what the target misses")
    run = command("run", "stream changes (forever, or with --once until caught up)")
    run.add_argument(
        "--once",
        action="store_true",
        help="process everything up to the WAL position at start, then exit",
    )
    run.add_argument(
        "--mode",
        metavar="STREAMER_MODE",
        help="slot (default): logical replication; poll: periodic SELECTs for sources "
        "without it (weaker guarantee, see README); files: objects in an S3 bucket "
        "[env STREAMER_MODE]",
    )
    add_files_options(run, run=True)
    run.add_argument(
        "--poll-interval",
        dest="poll_interval",
        metavar="POLL_INTERVAL_SECONDS",
        help="poll mode: seconds between cycles (default: 43200) [env POLL_INTERVAL_SECONDS]",
    )
    run.add_argument(
        "--poll-overlap-seconds",
        dest="poll_overlap",
        metavar="STREAMER_POLL_OVERLAP_SECONDS",
        help="poll mode: seconds re-read before the newest created_at seen, for late "
        "commits (default: 300) [env STREAMER_POLL_OVERLAP_SECONDS]",
    )
    run.add_argument(
        "--streaming",
        metavar="STREAMER_STREAMING",
        help="auto (default), on or off: receive large transactions while they run "
        "(pgoutput protocol 2, PostgreSQL 14+) instead of after their commit "
        "[env STREAMER_STREAMING]",
    )
    run.add_argument(
        "--pushgateway",
        metavar="STREAMER_PUSHGATEWAY_URL",
        help="with --once: push final metrics to this Pushgateway (job streamer)"
        " [env STREAMER_PUSHGATEWAY_URL]",
    )
    run.add_argument(
        "--metrics-textfile",
        dest="metrics_textfile",
        metavar="STREAMER_METRICS_TEXTFILE",
        help="with --once: write final metrics atomically to this file "
        "(node_exporter textfile collector) [env STREAMER_METRICS_TEXTFILE]",
    )
    status = command("status", "slot, checkpoint, lag and row counts; exit 1 when unhealthy")
    status.add_argument(
        "--mode",
        metavar="STREAMER_MODE",
        help="files: processed_files by status, oldest unprocessed object [env STREAMER_MODE]",
    )
    add_files_options(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--max-lag-bytes", type=int, help="unhealthy above this lag")
    status.add_argument("--max-lag-seconds", type=float, help="unhealthy above this lag")
    check = command("check", "preflight checklist with a fix for each failure")
    check.add_argument(
        "--standby",
        metavar="URL",
        help="also check this physical standby's slot synchronization settings",
    )
    verify = command("verify", "compare source and target ids; exit 1 on any difference")
    verify.add_argument(
        "--since", metavar="TIMESTAMP", help="only rows created at or after this time"
    )
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.add_argument(
        "--mode",
        metavar="STREAMER_MODE",
        help="which progress marker to verify against: slot (default) or poll; files: "
        "every listed object completed with its records in the target [env STREAMER_MODE]",
    )
    add_files_options(verify)
    verify.add_argument(
        "--poll-overlap-seconds",
        dest="poll_overlap",
        metavar="STREAMER_POLL_OVERLAP_SECONDS",
        help="poll mode: the overlap `run` uses (default: 300) [env STREAMER_POLL_OVERLAP_SECONDS]",
    )
    verify.add_argument(
        "--settle",
        type=int,
        default=60,
        metavar="SECONDS",
        help="slot mode: rows created this close to the last applied commit are not yet "
        "due (default: 60)",
    )
    verify.add_argument(
        "--skip-processed",
        action="store_true",
        help="do not report rows the legacy poller marked processed (after "
        "`init --backfill unprocessed`)",
    )
    replay = command("replay-rejected", "run the current normalizer over rejected rows again")
    replay.add_argument("--reason", help="only rows rejected with this reason")
    replay.add_argument("--dry-run", action="store_true", help="change nothing, print the counts")
    drop = command("drop", "remove the slot and the publication (decommissioning)")
    drop.add_argument("--yes", action="store_true", help="really drop them")
    demo = command("demo", "run against a throwaway local PostgreSQL", options=False)
    demo.add_argument(
        "--once",
        action="store_true",
        help="load a few hundred rows, catch up, print a summary, exit",
    )
    demo.add_argument("--rows", type=int, default=300, help="rows to load with --once")
    return parser


def read_environment(cwd: Path | None = None) -> dict[str, str]:
    """Process environment over a `.env` file in the working directory."""
    env_file = (cwd or Path.cwd()) / ".env"
    values: dict[str, str] = {}
    if env_file.is_file():
        from dotenv import dotenv_values  # noqa: PLC0415  (40 ms of start-up otherwise)

        values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    return {**values, **os.environ}


def settings_from(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    dests = [dest for dest, *_ in COMMON_OPTIONS] + ["pushgateway", "metrics_textfile"]
    dests += ["mode", "poll_interval", "poll_overlap", "streaming"]
    dests += ["files_url", "full_relist"] + [dest for _, dest, *_ in FILES_RUN_OPTIONS]
    flags = {dest: getattr(args, dest, None) for dest in dests}
    return load_settings(env, flags)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = read_environment()
    args.verbose = getattr(args, "verbose", False)
    log_format = getattr(args, "log_format", None) or env.get("STREAMER_LOG_FORMAT") or "text"
    configure_logging(args.verbose, log_format if log_format in ("text", "json") else "text")
    _speedups.warn_if_pure()
    try:
        return COMMANDS[args.command](args, lambda: settings_from(args, env))
    except StreamerError as exc:
        if args.verbose:
            log.exception("failed")
        print(f"streamer: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # an unexpected bug: say so, keep the traceback for --verbose
        if args.verbose:
            raise
        print(
            f"streamer: unexpected error: {type(exc).__name__}: {exc} "
            "(run with --verbose for a traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_RUNTIME


EXIT_UNFLUSHED = 120  # what CPython exits with when it cannot flush stdout at exit


def entry_point() -> NoReturn:
    """What the process runs once `streamer.launch` has set up the interpreter: `main`,
    then exit without interpreter teardown.

    Tearing down psycopg, prometheus_client and the rest takes 50-80 ms, a twentieth of
    a short `run --once` from cron. By the time `main` returns, every command has
    closed its connections, files and threads; only buffered output is left, and it is
    flushed here (a failed flush turns success into 120, as the interpreter's own exit
    would: `run --once >> log` on a full disk must not look fine to cron). If another
    thread is somehow still running, exit normally."""
    code = main()
    if threading.active_count() > 1:
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or EXIT_UNFLUSHED
    os._exit(code)
