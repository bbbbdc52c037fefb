"""The process entry point (`streamer`, `python -m streamer`): interpreter settings that
must come before the command line's imports.

Importing the command line loads psycopg, a few hundred modules whose objects live as
long as the process. At the default threshold the cyclic collector ran ~60 young-generation
passes during those imports, ~11 ms of a `run --once` start-up of ~150 ms, and found next
to nothing. So collection is off while they load; then what they made is frozen (left
out of every later collection) and collection is back on. A command's own modules (the
run path, imported when `run` starts) load with collection on, as before."""

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
