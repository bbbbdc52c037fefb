"""One retry policy, decided by the error tree."""

from __future__ import annotations

import random

import pytest

from streamer.errors import (
    EXIT_SLOT,
    ConfigError,
    ProtocolError,
    ProtocolStuck,
    SlotProblem,
    SourceUnavailable,
)
from streamer.sources.retry import ONCE_MAX_ATTEMPTS, PROTOCOL_RETRIES, RetryPolicy


def policy(once: bool = False) -> RetryPolicy:
    return RetryPolicy(once, random.Random(0))


@pytest.mark.parametrize("error", [ConfigError("x"), SlotProblem("x")])
def test_errors_that_a_retry_cannot_fix_end_the_run(error: Exception) -> None:
    with pytest.raises(type(error)):
        policy().delay_after(error, made_progress=False)  # type: ignore[arg-type]


def test_link_failures_retry_forever_in_continuous_mode() -> None:
    p = policy()
    for _ in range(50):
        assert p.delay_after(SourceUnavailable("cut"), made_progress=False) >= 0


def test_once_gives_up_after_a_few_attempts_without_progress() -> None:
    p = policy(once=True)
    for _ in range(ONCE_MAX_ATTEMPTS - 1):
        p.delay_after(SourceUnavailable("cut"), made_progress=False)
    with pytest.raises(SourceUnavailable):
        p.delay_after(SourceUnavailable("cut"), made_progress=False)


def test_progress_resets_the_attempt_count_for_link_failures() -> None:
    p = policy(once=True)
    for _ in range(3 * ONCE_MAX_ATTEMPTS):
        p.delay_after(SourceUnavailable("cut"), made_progress=True)


def test_a_protocol_error_at_the_same_lsn_stops_after_three_retries_despite_progress() -> None:
    p = policy()
    error = ProtocolError("truncated insert message", lsn=0x16B3748, message_type="I")
    for _ in range(PROTOCOL_RETRIES):
        p.delay_after(error, made_progress=True)
    with pytest.raises(ProtocolStuck) as stuck:
        p.delay_after(error, made_progress=True)
    assert stuck.value.exit_code == EXIT_SLOT
    assert "0/16B3748" in str(stuck.value) and "message type I" in str(stuck.value)


def test_protocol_errors_at_moving_lsns_keep_retrying() -> None:
    p = policy()
    for lsn in range(10):
        p.delay_after(ProtocolError("bad", lsn=lsn, message_type="I"), made_progress=True)
