import struct
from datetime import UTC, datetime, timedelta

import pytest

from streamer.pgoutput.frames import build_status_update, parse_keepalive, parse_xlog_data
from streamer.pgtime import now_pg_us, pg_us_to_iso, pg_us_to_unix


def test_status_update_layout() -> None:
    msg = build_status_update(0x30, 0x20, 0x10, 12345, reply_requested=True)
    assert len(msg) == 34
    assert msg[:1] == b"r"
    assert struct.unpack(">QQQqB", msg[1:]) == (0x30, 0x20, 0x10, 12345, 1)
    assert build_status_update(1, 1, 1, 0)[-1] == 0


def test_keepalive_parse() -> None:
    frame = memoryview(b"k" + struct.pack(">QqB", 0x1AFABE8, 777, 1))
    ka = parse_keepalive(frame)
    assert (ka.wal_end, ka.server_time_us, ka.reply_requested) == (0x1AFABE8, 777, True)


def test_xlog_data_parse() -> None:
    frame = memoryview(b"w" + struct.pack(">QQq", 10, 20, 30) + b"BODY")
    xl = parse_xlog_data(frame)
    assert (xl.data_start, xl.wal_end, xl.server_time_us) == (10, 20, 30)
    assert bytes(xl.payload) == b"BODY"


def test_postgres_epoch() -> None:
    assert pg_us_to_unix(0) == datetime(2000, 1, 1, tzinfo=UTC).timestamp()
    assert abs(pg_us_to_unix(now_pg_us()) - datetime.now(UTC).timestamp()) < 1


@pytest.mark.parametrize(
    "when",
    [
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # before the PG epoch
        datetime(2026, 11, 28, 4, 20, 27, 123456, tzinfo=UTC),
        datetime(2026, 11, 28, 4, 20, 27, 123457, tzinfo=UTC),  # same second, cached
        datetime(2026, 11, 28, 4, 20, 28, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
        datetime(50, 6, 1, tzinfo=UTC),  # a wild clock: the year must stay four digits
    ],
)
def test_commit_time_text_is_exact_iso_utc(when: datetime) -> None:
    pg_us = (when - datetime(2000, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    text = pg_us_to_iso(pg_us)
    assert datetime.fromisoformat(text) == when
    assert text.endswith("+00:00") and len(text) == len("2026-11-28T04:20:27.123456+00:00")
