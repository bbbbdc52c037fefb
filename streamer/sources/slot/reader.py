"""Whether `ReplicationStream` may read frames with the compiled twin (`_speedups._reader`).

That twin calls libpq on psycopg's PGconn pointer, so it must call the very library
psycopg loaded: psycopg_binary bundles its own libpq (`psycopg_binary.libs/libpq-*.so.5.*`)
and another version's functions on that struct would corrupt memory. It is found among
the files mapped into this process, and used only when exactly one libpq is mapped and
psycopg drives it from C; anything unexpected leaves the pure loop in `stream.py`.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from psycopg import pq  # imported first: the libpq looked for is the one it loads

from streamer._speedups import hot

log = logging.getLogger(__name__)

CompiledRead = Callable[[int, int], tuple[list[bytes], int]]
"""`_reader.read_frames(pgconn_ptr, limit)` -> (frames, outcome)."""

COMPILED_IMPLS = ("binary", "c")  # psycopg wrappers whose pgconn_ptr is a C PGconn*


def libpq_paths(maps: str) -> list[str]:
    """The distinct libpq files (sorted) in the text of a /proc/<pid>/maps."""
    paths = set()
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)  # address perms offset dev inode path
        if len(fields) < 6:
            continue  # an anonymous mapping
        path = fields[5]
        name = path.rsplit("/", 1)[-1]
        if path.startswith("/") and name.startswith("libpq") and ".so" in name:
            paths.add(path)
    return sorted(paths)


@functools.cache
def compiled_reader() -> CompiledRead | None:
    """The compiled `read_frames`, bound to psycopg's libpq; None (said once in the log)
    when the pure loop must run. Decided once per process."""
    reader = getattr(hot, "reader", None)  # hot is None under STREAMER_PURE_PYTHON=1
    if reader is None:
        return None
    reason = _bind(reader)
    if reason is not None:
        log.info("replication frames read by the pure loop: %s", reason)
        return None
    read: CompiledRead = reader.read_frames
    return read


def _bind(reader: Any) -> str | None:
    """Bind `reader` to the one libpq mapped; None when bound, else why not."""
    if not sys.platform.startswith("linux"):
        return f"libpq is not looked up on {sys.platform}"
    if pq.__impl__ not in COMPILED_IMPLS:
        return f"psycopg's {pq.__impl__!r} libpq wrapper"
    try:
        paths = libpq_paths(Path("/proc/self/maps").read_text())
    except OSError as exc:
        return f"cannot read /proc/self/maps: {exc}"
    if len(paths) != 1:
        return f"{len(paths)} libpq files mapped, not one: {', '.join(paths) or '-'}"
    reason: str | None = reader.bind(paths[0])
    return reason
