"""Files mode's command-line flags (the bucket for every command, reading options for
`run`); apart from the parser so each stays small. Settings are validated in `config`."""

from __future__ import annotations

import argparse

# files mode's reading flags of `run`: (flag, dest, env, help)
FILES_RUN_OPTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("--workers", "workers", "STREAMER_FILES_WORKERS", "objects downloaded ahead (default: 4)"),
    (
        "--max-file-bytes",
        "max_file_bytes",
        "STREAMER_FILES_MAX_BYTES",
        "largest .json document parsed whole (default: 256 MiB)",
    ),
    (
        "--lookback-days",
        "lookback_days",
        "STREAMER_FILES_LOOKBACK_DAYS",
        "dated partitions re-listed before the newest completed one (default: 2)",
    ),
    (
        "--sqs-queue-url",
        "sqs_queue_url",
        "STREAMER_FILES_SQS_URL",
        "SQS queue of S3 event notifications: new objects within seconds (optional)",
    ),
)


def add_files_options(p: argparse.ArgumentParser, *, run: bool = False) -> None:
    """Files mode's flags: the bucket for every command, reading options for `run`."""
    p.add_argument(
        "--files-url",
        dest="files_url",
        metavar="STREAMER_FILES_URL",
        help="files mode: bucket and prefix to read, s3://bucket/prefix/ [env STREAMER_FILES_URL]",
    )
    if not run:
        return
    for flag, dest, env, text in FILES_RUN_OPTIONS:
        p.add_argument(flag, dest=dest, metavar=env, help=f"files mode: {text} [env {env}]")
    p.add_argument(
        "--full-relist",
        dest="full_relist",
        action="store_true",
        default=None,
        help="files mode: list the whole prefix, not just the recent partitions"
        " [env STREAMER_FILES_FULL_RELIST=1]",
    )
