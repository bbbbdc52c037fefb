"""The driver loop's decisions, without a server."""

from __future__ import annotations

import pytest

from streamer.sources.decisions import (
    IDLE_ADVANCE_INTERVAL_S,
    Action,
    Turn,
    idle_position,
    next_action,
    once_finished,
    should_prepare,
    should_read,
)


def turn(**kw: object) -> Turn:
    values: dict[str, object] = {
        "ending": False,
        "writer_busy": False,
        "batch_ready": False,
        "builder_empty": True,
        "idle_position": None,
    }
    values.update(kw)
    return Turn(**values)  # type: ignore[arg-type]


def test_without_a_stop_position_a_run_never_finishes_by_itself() -> None:
    assert not once_finished(None, True, 10**9, False, False)


@pytest.mark.parametrize(
    ("reached_end", "keepalive_end", "in_txn", "skipping", "finished"),
    [
        (True, 0, True, False, True),  # a transaction at/after the stop position began
        (False, 500, False, False, True),  # the server's WAL end reached it, idle
        (False, 499, False, False, False),  # not yet
        (False, 500, True, False, False),  # a transaction is still open: finish it first
        (False, 500, False, True, False),  # inside an already applied transaction
    ],
)
def test_once_finishes_at_the_stop_position(
    reached_end: bool, keepalive_end: int, in_txn: bool, skipping: bool, finished: bool
) -> None:
    assert once_finished(500, reached_end, keepalive_end, in_txn, skipping) is finished


def test_reading_pauses_while_a_full_batch_waits_and_a_busy_writer_is_backpressure() -> None:
    assert should_read(ending=False, batch_waiting=False)
    assert not should_read(ending=False, batch_waiting=True)  # hand it over first
    assert not should_read(ending=True, batch_waiting=False)


def test_the_next_full_batch_is_prepared_only_while_the_writer_is_busy() -> None:
    assert should_prepare(writer_busy=True, builder_full=True, prepared=False)
    assert not should_prepare(writer_busy=False, builder_full=True, prepared=False)
    assert not should_prepare(writer_busy=True, builder_full=False, prepared=False)
    assert not should_prepare(writer_busy=True, builder_full=True, prepared=True)  # bound


def test_idle_advance_is_paced_and_never_backwards() -> None:
    args = {"skipping": False, "ending": False, "now": 10.0, "last_advance": 0.0}
    assert idle_position(800, 500, **args) == 800
    assert idle_position(500, 500, **args) is None  # nothing new
    assert idle_position(400, 500, **args) is None  # behind the checkpoint
    assert idle_position(800, 500, **{**args, "skipping": True}) is None
    recent = {**args, "last_advance": 10.0 - IDLE_ADVANCE_INTERVAL_S / 2}
    assert idle_position(800, 500, **recent) is None
    assert idle_position(800, 500, **{**recent, "ending": True}) == 800  # ending: now


def test_one_batch_in_flight_and_a_stop_waits_for_it() -> None:
    assert next_action(turn(writer_busy=True, batch_ready=True)) is Action.WAIT
    assert next_action(turn(writer_busy=True, ending=True)) is Action.WAIT


def test_a_ready_batch_goes_before_an_idle_advance() -> None:
    t = turn(batch_ready=True, builder_empty=False, idle_position=900)
    assert next_action(t) is Action.WRITE_BATCH
    assert next_action(turn(idle_position=900)) is Action.ADVANCE
    assert next_action(turn(idle_position=900, builder_empty=False)) is Action.WAIT


def test_stop_on_signal_finishes_once_nothing_is_left() -> None:
    assert next_action(turn(ending=True)) is Action.FINISH
    assert next_action(turn(ending=True, builder_empty=False)) is Action.WAIT
    assert next_action(turn(ending=True, batch_ready=True, builder_empty=False)) is (
        Action.WRITE_BATCH
    )
