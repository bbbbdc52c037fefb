"""Progress for long copies: a bar on a terminal, a log line every 10 s otherwise."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

log = logging.getLogger(__name__)

LOG_EVERY_S = 10.0
DRAW_EVERY_S = 0.2


class Progress:
    def __init__(
        self,
        label: str,
        total: int,
        stream: TextIO | None = None,
        *,
        unit: str = "rows",
        log_off_tty: bool = True,
    ) -> None:
        """`log_off_tty=False`: nothing at all off a terminal (for runs whose logs must
        not change when a bar is added)."""
        self.label = label
        self.unit = unit
        self._log = log_off_tty
        self.total = max(total, 0)
        self.done = 0
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._started = self._last = time.monotonic()

    def _text(self, now: float) -> str:
        elapsed = max(now - self._started, 1e-9)
        rate = self.done / elapsed
        left = max(self.total - self.done, 0)
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        unit = self.unit
        return f"{self.label}: {self.done}/{self.total} {unit}, {rate:,.0f} {unit}/s, ETA {eta}"

    def update(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if self._tty and now - self._last >= DRAW_EVERY_S:
            width = 30
            filled = int(width * min(self.done / self.total, 1.0)) if self.total else width
            bar = "#" * filled + "-" * (width - filled)
            self._stream.write(f"\r[{bar}] {self._text(now)}   ")
            self._stream.flush()
            self._last = now
        elif not self._tty and self._log and now - self._last >= LOG_EVERY_S:
            log.info("%s", self._text(now))
            self._last = now

    def finish(self) -> None:
        if self._tty:
            self._stream.write("\n")
        if self._tty or self._log:
            log.info("%s (done)", self._text(time.monotonic()))
