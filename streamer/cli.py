"""Command line: argument parsing, env fallback, exit codes. No business logic here."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from streamer import __version__
from streamer.config import DEFAULT_BATCH_SIZE, DEFAULT_BATCH_TIMEOUT_MS, Settings, load_settings
from streamer.errors import EXIT_RUNTIME, EXIT_USAGE, StreamerError
from streamer.stopping import StopFlag

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
    parser = _Parser(
        prog="streamer",
        description="Stream raw_transactions inserts from a logical replication slot into "
        "a normalized transactions table, exactly once.",
        epilog="Flags override environment variables; a .env file in the working directory "
        "is read too.",
    )
    parser.add_argument("--version", action="version", version=f"streamer {__version__}")
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="debug logging; tracebacks on errors"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p: argparse.ArgumentParser) -> None:
        for dest, flag, env, text in COMMON_OPTIONS:
            p.add_argument(flag, dest=dest, metavar=env, help=f"{text} [env {env}]")

    common(sub.add_parser("init", help="create publication, slot and target tables"))
    run = sub.add_parser("run", help="stream changes (forever, or until caught up)")
    common(run)
    run.add_argument(
        "--once",
        action="store_true",
        help="process everything up to the WAL position at start, then exit",
    )
    demo = sub.add_parser("demo", help="run against a throwaway local PostgreSQL")
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
        values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    return {**values, **os.environ}


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def install_stop_handlers(stop: StopFlag) -> None:
    """SIGTERM/SIGINT ask the loop to finish cleanly; a second signal exits at once."""

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            os._exit(128 + signum)
        log.info("received %s: finishing the current batch", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def settings_from(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    flags = {dest: getattr(args, dest, None) for dest, *_ in COMMON_OPTIONS}
    return load_settings(env, flags)


def cmd_init(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from streamer.setup import ensure_all  # noqa: PLC0415

    settings = settings_from(args, env)
    created = ensure_all(settings)
    if created:
        for line in created:
            print(f"created {line}")
    else:
        print("nothing to do: publication, slot, checkpoint and target tables exist")
    return 0


def cmd_run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from streamer import pipeline  # noqa: PLC0415
    from streamer.metrics import Metrics  # noqa: PLC0415
    from streamer.metrics_server import start_metrics_server  # noqa: PLC0415
    from streamer.setup import ensure_all  # noqa: PLC0415

    settings = settings_from(args, env)
    settings.require_urls()
    stop = StopFlag()
    install_stop_handlers(stop)
    metrics = Metrics()
    metrics.set_info(settings.slot, settings.publication)
    server = start_metrics_server(metrics, settings) if not args.once else None
    log.info("streamer %s starting: %r", __version__, settings)
    try:
        ensure_all(settings)
        summary = pipeline.run(settings, once=args.once, metrics=metrics, stop=stop)
    finally:
        if server is not None:
            server.shutdown()
    if args.once:
        print(summary.line())
    else:
        log.info("stopped: %s", summary.line())
    return 0


def cmd_demo(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from streamer.demo import run_demo  # noqa: PLC0415

    stop = StopFlag()
    install_stop_handlers(stop)
    return run_demo(once=args.once, rows=args.rows, stop=stop)


COMMANDS: dict[str, Callable[[argparse.Namespace, Mapping[str, str]], int]] = {
    "init": cmd_init,
    "run": cmd_run,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        return COMMANDS[args.command](args, read_environment())
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


if __name__ == "__main__":
    sys.exit(main())
