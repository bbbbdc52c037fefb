"""Test-only crash points: `STREAMER_FAILPOINT=name[:n]` kills the process with SIGKILL
the n-th time (default 1st) execution passes `name`.

Read once at import; call sites guard with `if failpoints.ACTIVE:` so production pays a
single global lookup. Points: after_decode (rows decoded, no target transaction yet),
before_commit (rows written, COMMIT not sent), after_commit (committed, flush position not
yet sent upstream), rejected_write (inside the COPY of rejected rows).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_SPEC = os.environ.get("STREAMER_FAILPOINT", "")
_NAME, _, _COUNT = _SPEC.partition(":")
ACTIVE = bool(_NAME)
_remaining = int(_COUNT) if _COUNT.isdigit() else 1


def hit(name: str) -> None:
    """Crash here if this is the armed point and its count is reached."""
    global _remaining  # noqa: PLW0603  (process-wide by design)
    if name != _NAME:
        return
    _remaining -= 1
    if _remaining <= 0:
        os.kill(os.getpid(), signal.SIGKILL)


def between(items: Iterable[T], name: str) -> Iterator[T]:
    """`items`, passing `name` after each: a crash between two of them (inside the COPY
    that consumes them)."""
    for item in items:
        yield item
        hit(name)
