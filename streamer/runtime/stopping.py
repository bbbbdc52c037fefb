"""A stop flag the main loop can select() on, so SIGTERM wakes it at once.

A plain threading.Event cannot: Python resumes an interrupted select() after running the
signal handler, so the loop would sleep on until its timeout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading


class StopFlag:
    def __init__(self) -> None:
        self._event = threading.Event()
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def set(self) -> None:
        """Safe to call from a signal handler or another thread."""
        self._event.set()
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write, b"x")

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    def fileno(self) -> int:
        return self._read


def install_stop_handlers(stop: StopFlag) -> None:
    """SIGTERM/SIGINT ask the loop to finish cleanly; a second signal exits at once."""

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            os._exit(128 + signum)
        logging.getLogger("streamer").info(
            "received %s: finishing the current batch", signal.Signals(signum).name
        )
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
