"""The compiled frame reader (`_speedups/_reader.pyx`) against the pure loop of
`ReplicationStream.read_frames`, on a real server: the same backlog read through both
gives the same frames, and the stream's end and a cut connection raise the same errors."""

from __future__ import annotations

import contextlib
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamer.errors import SourceUnavailable
from streamer.pgoutput.frames import KEEPALIVE, XLOG_DATA, XLOG_HEADER_SIZE
from streamer.pgoutput.messages import COMMIT, STREAM_COMMIT, STREAM_START
from streamer.sources.slot.reader import compiled_reader
from streamer.sources.slot.stream import MAX_FRAMES_PER_READ, ReplicationStream
from tests.integration.conftest import Lab

pytestmark = pytest.mark.skipif(
    compiled_reader() is None, reason="compiled frame reader not built or not bound"
)
REPO = Path(__file__).resolve().parents[2]


def publish(lab: Lab, *slots: str) -> None:
    lab.sql(
        lab.source_url,
        f'CREATE PUBLICATION "{lab.name}" FOR TABLE raw_transactions WITH (publish = insert)',
    )
    for slot in slots:
        lab.sql(lab.source_url, "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [slot])


def open_stream(lab: Lab, slot: str, compiled: bool, url: str = "") -> ReplicationStream:
    stream = ReplicationStream(url or lab.source_url, compiled=compiled)
    assert stream.compiled is compiled
    stream.start(slot, lab.name, 0, streaming=True)
    return stream


def read_until(
    stream: ReplicationStream, done: Callable[[list[bytes]], bool], limit: int, timeout: float = 30
) -> list[bytes]:
    """Every frame read (as bytes) until `done(frames)`; the reads' shape is checked."""
    frames: list[bytes] = []
    read: list[bytes] | list[memoryview] = []
    deadline = time.monotonic() + timeout
    while not done(frames):
        assert time.monotonic() < deadline, f"{len(frames)} frames after {timeout}s"
        if len(read) < limit:  # else libpq may hold more than the socket says
            select.select([stream.fileno], [], [], 0.2)
        read = stream.read_frames(limit)
        assert len(read) <= limit
        kind = bytes if stream.compiled else memoryview
        assert all(type(frame) is kind for frame in read)
        frames.extend(bytes(frame) for frame in read)
    return frames


def commits(frames: list[bytes]) -> int:
    return sum(
        1 for f in frames if f[0] == XLOG_DATA and f[XLOG_HEADER_SIZE] in (COMMIT, STREAM_COMMIT)
    )


def comparable(frames: list[bytes]) -> list[bytes]:
    """XLogData frames without their send time (keepalives come when the server likes)."""
    assert all(f[0] in (XLOG_DATA, KEEPALIVE) for f in frames)
    return [f[:17] + f[XLOG_HEADER_SIZE:] for f in frames if f[0] == XLOG_DATA]


def test_compiled_and_pure_readers_read_the_same_frames(lab: Lab) -> None:
    publish(lab, "compiled_slot", "pure_slot")
    rows: list[tuple[object, object]] = [
        ({"n": i, "pad": "x" * (i % 7) * 40}, {"name": "m"}) for i in range(300)
    ]
    lab.insert(rows, per_txn=1)  # single-row transactions: three frames a row
    lab.insert(rows * 4, per_txn=1200)  # one over logical_decoding_work_mem: streamed
    lab.insert([({"big": "y" * 300_000}, {"name": "m"})])  # one frame larger than libpq's buffer
    transactions = 300 + 1 + 1
    for limit in (7, MAX_FRAMES_PER_READ):  # no status is sent: each read replays it all
        got = {}
        for slot, compiled in (("compiled_slot", True), ("pure_slot", False)):
            stream = open_stream(lab, slot, compiled)
            try:
                got[compiled] = read_until(stream, lambda f: commits(f) >= transactions, limit)
            finally:
                stream.close()
        assert commits(got[True]) == commits(got[False]) == transactions
        assert comparable(got[True]) == comparable(got[False])
        streamed = [
            f for f in got[True] if f[0] == XLOG_DATA and f[XLOG_HEADER_SIZE] == STREAM_START
        ]
        assert streamed  # the large transaction came in stream blocks


def ended_by(lab: Lab, slot: str, compiled: bool, end: Callable[[], object], url: str = "") -> str:
    """The message of the SourceUnavailable that reading raises once `end()` ran."""
    lab.insert([({"n": 1}, {"name": "m"})])  # something to read: the stream is up
    stream = open_stream(lab, slot, compiled, url)
    try:
        read_until(stream, lambda f: commits(f) >= 1, 10)
        end()
        with pytest.raises(SourceUnavailable) as raised:
            read_until(stream, lambda f: False, 10)
    finally:
        stream.close()
    return str(raised.value)


def test_the_server_ending_the_stream_raises_source_unavailable(lab: Lab) -> None:
    publish(lab, "compiled_slot", "pure_slot")

    def terminate(slot: str) -> Callable[[], object]:
        query = "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
        return lambda: lab.sql(lab.source_url, f"{query} WHERE slot_name = %s", [slot])

    expected = (
        "the source ended the replication stream: "
        "terminating connection due to administrator command"
    )
    assert ended_by(lab, "compiled_slot", True, terminate("compiled_slot")) == expected
    assert ended_by(lab, "pure_slot", False, terminate("pure_slot")) == expected


@contextlib.contextmanager
def proxy_process(target_port: int) -> Iterator[tuple[int, Callable[[], None]]]:
    """A `FaultyProxy` in a child process: (its port, reset all its connections). Not a
    thread here: libpq's blocking connect holds the GIL, so it would wait on itself."""
    code = (
        "import sys\n"
        "from tests.integration.proxy import FaultyProxy\n"
        "proxy = FaultyProxy(int(sys.argv[1]))\n"
        "print(proxy.port, flush=True)\n"
        "for _ in sys.stdin:\n"
        "    proxy.reset_all()\n"
        "    print('reset', flush=True)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, str(target_port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    ) as child:
        stdin, stdout = child.stdin, child.stdout
        assert stdin is not None and stdout is not None

        def reset() -> None:
            stdin.write("reset\n")
            stdin.flush()
            assert stdout.readline() == "reset\n"

        try:
            yield int(stdout.readline()), reset
        finally:
            stdin.close()  # the child's loop ends: it exits, its proxy with it


def test_a_reset_connection_raises_the_same_source_unavailable(lab: Lab) -> None:
    """PQconsumeInput fails: the message is psycopg's, with libpq's reason."""
    publish(lab, "compiled_slot", "pure_slot")
    with proxy_process(lab.source.port) as (port, reset):
        url = lab.source_url.replace(f":{lab.source.port}/", f":{port}/")
        compiled = ended_by(lab, "compiled_slot", True, reset, url)
        pure = ended_by(lab, "pure_slot", False, reset, url)
    assert compiled == pure
    assert compiled.startswith("replication connection lost: consuming input failed: "), compiled


def test_reading_before_replication_started_raises_the_same_source_unavailable(
    lab: Lab,
) -> None:
    """PQgetCopyData -2 (no COPY in progress): psycopg's other OperationalError."""
    messages = []
    for compiled in (True, False):
        stream = ReplicationStream(lab.source_url, compiled=compiled)
        assert stream.compiled is compiled
        try:
            with pytest.raises(SourceUnavailable) as raised:
                stream.read_frames()
        finally:
            stream.close()
        messages.append(str(raised.value))
    assert messages == 2 * [
        "replication connection lost: receiving copy data failed: no COPY in progress"
    ]
