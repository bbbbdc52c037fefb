"""Poll mode's pure parts: where a cycle starts, the marker's text form, the settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streamer.config import load_settings
from streamer.errors import ConfigError
from streamer.sources.poll import decode_marker, encode_marker, marker_name, scan_start

NOW = datetime(2024, 5, 1, 12, 0, 0)


def test_first_cycle_reads_everything() -> None:
    assert scan_start(None, NOW, 300) is None


def test_cycle_starts_one_overlap_before_the_newest_row_seen() -> None:
    marker = NOW - timedelta(minutes=1)
    assert scan_start(marker, NOW, 300) == marker - timedelta(seconds=300)
    assert scan_start(marker, NOW, 0) == marker


def test_a_row_dated_in_the_future_does_not_make_the_poller_skip_the_present() -> None:
    future = NOW + timedelta(days=365)
    assert scan_start(future, NOW, 300) == NOW - timedelta(seconds=300)


@pytest.mark.parametrize(
    "value", [NOW, NOW.replace(microsecond=123456), datetime(2024, 5, 1, 10, tzinfo=UTC)]
)
def test_marker_round_trips_with_its_timezone_awareness(value: datetime) -> None:
    decoded = decode_marker(encode_marker(value))
    assert decoded == value and (decoded.tzinfo is None) == (value.tzinfo is None)


def test_no_marker_yet() -> None:
    assert decode_marker(None) is None and decode_marker("") is None


def test_marker_row_is_named_after_the_table_and_cannot_clash_with_a_slot() -> None:
    settings = load_settings({"STREAMER_SOURCE_TABLE": "lake.raw"})
    assert marker_name(settings) == "poll:lake.raw"


def test_mode_and_poll_settings_from_env_and_flags() -> None:
    defaults = load_settings({})
    assert (defaults.mode, defaults.poll_interval_seconds, defaults.poll_overlap_seconds) == (
        "slot",
        43200,
        300,
    )
    env = {"STREAMER_MODE": "POLL", "POLL_INTERVAL_SECONDS": "60"}
    settings = load_settings(env, {"poll_overlap": "0"})
    assert (settings.mode, settings.poll_interval_seconds, settings.poll_overlap_seconds) == (
        "poll",
        60,
        0,
    )
    assert load_settings(env, {"mode": "slot"}).mode == "slot"


@pytest.mark.parametrize(
    "env",
    [{"STREAMER_MODE": "cdc"}, {"POLL_INTERVAL_SECONDS": "0"}, {"POLL_INTERVAL_SECONDS": "soon"}],
)
def test_invalid_poll_settings_are_usage_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        load_settings(env)


def test_marker_never_passes_the_source_clock() -> None:
    from streamer.sources.poll import next_marker  # noqa: PLC0415

    future = NOW + timedelta(days=1)
    assert next_marker(None, future, NOW) == NOW  # a row dated tomorrow
    assert next_marker(NOW - timedelta(hours=1), NOW - timedelta(hours=2), NOW) == NOW - timedelta(
        hours=1
    )  # never backwards
    assert next_marker(None, NOW - timedelta(seconds=5), NOW) == NOW - timedelta(seconds=5)
