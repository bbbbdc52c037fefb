"""One retry policy for every run, decided by the error tree.

Retryable failures (a database down or restarting, a cut connection) reopen the source
after a capped, jittered backoff: forever in continuous mode, a few times in a row with
`--once` (the count starts again after progress). Everything else ends the run.

A protocol error is different: the server will send the same frame again, so progress
before it proves nothing. It is retried at most `PROTOCOL_RETRIES` times at the same LSN;
then the run stops (exit 3) naming the LSN and the message type.
"""

from __future__ import annotations

import random
from typing import Final

from streamer.errors import ProtocolError, ProtocolStuck, StreamerError
from streamer.lsn import format_lsn

ONCE_MAX_ATTEMPTS: Final = 5
PROTOCOL_RETRIES: Final = 3
BACKOFF_BASE_S: Final = 0.5
BACKOFF_CAP_S: Final = 30.0


def backoff_delay(attempt: int, rng: random.Random) -> float:
    """Capped exponential backoff with full jitter."""
    return rng.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))


class RetryPolicy:
    """Decides, after each failed attempt, whether to try again and after how long."""

    def __init__(self, once: bool, rng: random.Random | None = None) -> None:
        self.once = once
        self.rng = rng or random.Random()
        self.attempt = 0
        self._protocol_lsn: int | None = None
        self._protocol_failures = 0

    def delay_after(self, exc: StreamerError, made_progress: bool) -> float:
        """Seconds to wait before the next attempt; re-raises when there is none."""
        if not exc.retryable:  # the error tree decides
            raise exc
        if isinstance(exc, ProtocolError):
            self._count_protocol_error(exc)
        self.attempt = 0 if made_progress else self.attempt + 1
        if self.once and self.attempt >= ONCE_MAX_ATTEMPTS:
            raise exc
        return backoff_delay(self.attempt, self.rng)

    def _count_protocol_error(self, exc: ProtocolError) -> None:
        if exc.lsn != self._protocol_lsn:
            self._protocol_lsn, self._protocol_failures = exc.lsn, 0
        self._protocol_failures += 1
        if self._protocol_failures > PROTOCOL_RETRIES:
            where = format_lsn(exc.lsn) if exc.lsn is not None else "an unknown LSN"
            raise ProtocolStuck(
                f"the replication stream keeps sending a message streamer cannot decode: "
                f"message type {exc.message_type or '?'} at {where}, "
                f"{self._protocol_failures} times: {exc}"
            ) from None
