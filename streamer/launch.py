"""The process entry point (`streamer`, `python -m streamer`): interpreter settings that
must come before the command line's imports.

Importing psycopg, prometheus_client, the normalizer's code tables and the rest allocates
a few hundred thousand objects, and the cyclic collector, at its default threshold, ran
dozens of passes over them: ~11 ms of a `run --once` start-up of ~150 ms. Those objects
live as long as the process and form no garbage, so collection is off while they are
made; then they are frozen (left out of every later full collection, which also makes
those cheaper for the long-running service) and collection is back on."""

from __future__ import annotations

import gc
from typing import NoReturn


def main() -> NoReturn:
    gc.disable()
    try:
        from streamer.cli import entry_point  # noqa: PLC0415 (the point: after gc.disable)
    finally:
        gc.freeze()
        gc.enable()
    entry_point()
