"""The command handlers: each turns parsed arguments into a call of the operator command
or run it names, prints its lines, and returns the exit code. Parsing is the CLI's job;
`settings_from` builds the settings (flags over environment) when a command needs them."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from streamer.config import Settings, normalize_url
from streamer.errors import EXIT_RUNTIME, ConfigError
from streamer.runtime.stopping import StopFlag, install_stop_handlers

Load = Callable[[], Settings]


def cmd_init(args: argparse.Namespace, settings_from: Load) -> int:
    from streamer.ops.setup import ensure_all  # noqa: PLC0415
    from streamer.sources.backfill import validate_mode  # noqa: PLC0415

    mode = validate_mode(args.backfill)
    settings = settings_from()
    if settings.mode == "files":
        from streamer.app import init_files  # noqa: PLC0415

        print("\n".join(init_files(settings)))
        return 0
    done = ensure_all(settings, backfill=mode)
    if done:
        for line in done:
            print(line)
    else:
        print("nothing to do: publication, slot, checkpoint and target tables exist")
    return 0


def cmd_run(args: argparse.Namespace, settings_from: Load) -> int:
    from streamer.app import run_command  # noqa: PLC0415

    settings = settings_from()
    stop = StopFlag()
    install_stop_handlers(stop)
    return run_command(settings, args.once, stop)


def cmd_verify(args: argparse.Namespace, settings_from: Load) -> int:
    from streamer.ops.verify import verify  # noqa: PLC0415

    settings = settings_from()
    report: Any
    if settings.mode == "files":
        from streamer.ops.files import files_verify  # noqa: PLC0415

        report = files_verify(settings)
    else:
        since = _timestamp(args.since, "--since") if args.since is not None else None
        if args.settle < 0:
            raise ConfigError(f"--settle must be 0 or more seconds, got {args.settle}")
        report = verify(settings, since, args.settle, args.skip_processed)
    if args.json:
        print(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else EXIT_RUNTIME


def _timestamp(text: str, flag: str) -> str:
    """Validate an ISO 8601 date or timestamp; the database parses the text itself."""
    try:
        datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"{flag} must be an ISO 8601 date or timestamp, got {text[:40]!r}",
            hint="e.g. 2024-05-01 or 2024-05-01T12:00:00",
        ) from None
    return text.strip()


def cmd_replay(args: argparse.Namespace, settings_from: Load) -> int:
    from streamer.normalize import REJECTION_REASONS  # noqa: PLC0415
    from streamer.ops.replay import replay  # noqa: PLC0415

    if args.reason is not None and args.reason not in REJECTION_REASONS:
        raise ConfigError(
            f"--reason must be one of {', '.join(sorted(REJECTION_REASONS))}, "
            f"got {args.reason[:40]!r}"
        )
    for line in replay(settings_from(), args.reason, args.dry_run).lines():
        print(line)
    return 0


def cmd_status(args: argparse.Namespace, settings_from: Load) -> int:
    from streamer.ops.status import gather  # noqa: PLC0415

    settings = settings_from()
    status: Any
    if settings.mode == "files":
        from streamer.ops.files import files_status  # noqa: PLC0415

        status = files_status(settings, args.max_lag_seconds)
    else:
        status = gather(settings, args.max_lag_bytes, args.max_lag_seconds)
    if args.json:
        print(orjson.dumps(status.as_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        print("\n".join(status.lines()))
    return 0 if status.healthy else EXIT_RUNTIME


def cmd_check(args: argparse.Namespace, settings_from: Load) -> int:
    from streamer.ops.preflight import run_checks  # noqa: PLC0415

    standby = normalize_url(args.standby, "the --standby URL") if args.standby else None
    results = run_checks(settings_from(), standby)
    for result in results:
        print(result.line())
    failed = sum(r.status == "fail" for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return EXIT_RUNTIME if failed else 0


def cmd_drop(args: argparse.Namespace, settings_from: Load) -> int:
    from streamer.ops.setup import drop_all  # noqa: PLC0415

    settings = settings_from()
    if not args.yes:
        raise ConfigError(
            f"this drops replication slot {settings.slot!r} and publication "
            f"{settings.publication!r}; changes not yet applied are lost",
            hint="add --yes to confirm",
        )
    for line in drop_all(settings):
        print(line)
    return 0


def cmd_resync(args: argparse.Namespace, settings_from: Load) -> int:
    from streamer.ops.setup import resync  # noqa: PLC0415

    for line in resync(settings_from()):
        print(line)
    return 0


def cmd_demo(args: argparse.Namespace, settings_from: Load) -> int:
    from streamer.ops.demo import run_demo  # noqa: PLC0415

    stop = StopFlag()
    install_stop_handlers(stop)
    return run_demo(once=args.once, rows=args.rows, stop=stop)


COMMANDS: dict[str, Callable[[argparse.Namespace, Load], int]] = {
    "init": cmd_init,
    "run": cmd_run,
    "resync": cmd_resync,
    "verify": cmd_verify,
    "replay-rejected": cmd_replay,
    "status": cmd_status,
    "check": cmd_check,
    "drop": cmd_drop,
    "demo": cmd_demo,
}
