"""The compiled frame reader's libpq lookup (`sources/slot/reader.py`), and its failure
outcomes against the pure loop's on connections that need no server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from psycopg import pq

from streamer._speedups import hot
from streamer.errors import SourceUnavailable
from streamer.sources.slot import reader as reader_module
from streamer.sources.slot import stream as stream_module
from streamer.sources.slot.reader import COMPILED_IMPLS, compiled_reader, libpq_paths
from streamer.sources.slot.stream import ReplicationStream

BUNDLED = "/venv/lib/python3.11/site-packages/psycopg_binary.libs/libpq-e9b5c9ac.so.5.18"
MAPS = f"""\
5581e0a00000-5581e0a01000 r--p 00000000 08:01 1234   /usr/bin/python3.11
5581e1c00000-5581e1e00000 rw-p 00000000 00:00 0      [heap]
7f1a20000000-7f1a20021000 rw-p 00000000 00:00 0
7f1a2c000000-7f1a2c00d000 r--p 00000000 08:01 5678   {BUNDLED}
7f1a2c00d000-7f1a2c040000 r-xp 0000d000 08:01 5678   {BUNDLED}
7f1a2c040000-7f1a2c050000 r--p 00040000 08:01 5678   {BUNDLED}
7f1a2d000000-7f1a2d100000 r-xp 00000000 08:01 9012   /usr/lib/x86_64-linux-gnu/libc.so.6
7f1a2e000000-7f1a2e010000 r--p 00000000 08:01 3456   /opt/my libs/libpqxx-7.8.so
7ffd5a000000-7ffd5a021000 rw-p 00000000 00:00 0      [stack]
"""
bound = pytest.mark.skipif(
    getattr(hot, "reader", None) is None, reason="compiled frame reader not built"
)


class FakeReader:
    def __init__(self) -> None:
        self.paths: list[str] = []

    def bind(self, path: str) -> str | None:
        self.paths.append(path)
        return None


def test_maps_give_each_libpq_file_once() -> None:
    # libpqxx is not libpq, but is kept: two "libpq" files make the lookup give up
    assert libpq_paths(MAPS) == ["/opt/my libs/libpqxx-7.8.so", BUNDLED]
    assert libpq_paths(MAPS.replace("libpqxx-7.8", "libc++")) == [BUNDLED]
    assert libpq_paths("") == []


def test_maps_of_this_process_name_the_libpq_psycopg_uses() -> None:
    paths = libpq_paths(Path("/proc/self/maps").read_text())
    assert len(paths) == 1
    if pq.__impl__ == "binary":
        assert "psycopg_binary" in paths[0]


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"platform": "darwin"}, "libpq is not looked up on darwin"),
        ({"impl": "python"}, "psycopg's 'python' libpq wrapper"),
        ({"paths": []}, "0 libpq files mapped, not one: -"),
        ({"paths": ["/a/libpq.so.5", "/b/libpq.so.5"]}, "2 libpq files mapped, not one: /a/"),
    ],
)
def test_anything_unexpected_leaves_the_pure_loop(
    monkeypatch: pytest.MonkeyPatch, patch: dict[str, Any], reason: str
) -> None:
    monkeypatch.setattr(sys, "platform", patch.get("platform", "linux"))
    monkeypatch.setattr(pq, "__impl__", patch.get("impl", "binary"))
    if "paths" in patch:
        monkeypatch.setattr(reader_module, "libpq_paths", lambda maps: patch["paths"])
    fake = FakeReader()
    got = reader_module._bind(fake)
    assert got is not None and got.startswith(reason)
    assert fake.paths == []


def test_the_one_libpq_mapped_is_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pq, "__impl__", "binary")
    fake = FakeReader()
    assert reader_module._bind(fake) is None
    assert fake.paths == libpq_paths(Path("/proc/self/maps").read_text())


@bound
def test_bind_refuses_a_file_not_loaded_and_a_library_without_the_functions() -> None:
    assert hot is not None
    assert hot.reader.bind("/nonexistent/libpq.so.5") is not None
    libc = next(
        line.split(maxsplit=5)[5]
        for line in Path("/proc/self/maps").read_text().splitlines()
        if line.rstrip().endswith("/libc.so.6")
    )
    assert hot.reader.bind(libc) == f"{libc} lacks PQconsumeInput, PQgetCopyData or PQfreemem"


@bound
def test_the_stream_knows_the_compiled_outcomes() -> None:
    assert hot is not None
    module = hot.reader
    assert module.READ == 0
    assert (module.ENDED, module.COPY_FAILED, module.CONSUME_FAILED) == (
        stream_module._ENDED,
        stream_module._COPY_FAILED,
        stream_module._CONSUME_FAILED,
    )


@bound
def test_the_compiled_reader_runs_where_psycopg_drives_libpq_from_c() -> None:
    if pq.__impl__ in COMPILED_IMPLS:
        assert compiled_reader() is not None


def failed_stream(compiled: bool) -> ReplicationStream:
    """A stream over a connection that failed (no server there), so reads must fail. Built
    around it: `__init__` would connect, and libpq refuses nonblocking on a failed one."""
    pgconn = pq.PGconn.connect(b"host=/nonexistent/streamer-test port=1 connect_timeout=1")
    assert pgconn.status == pq.ConnStatus.BAD
    stream = ReplicationStream.__new__(ReplicationStream)
    stream._url, stream._pgconn = "postgresql:///none", pgconn
    stream._compiled_read = compiled_reader() if compiled else None
    return stream


def read_error(stream: ReplicationStream) -> str:
    with pytest.raises(SourceUnavailable) as raised:
        stream.read_frames()
    return str(raised.value)


@bound
def test_a_failed_connection_raises_what_the_pure_loop_raises() -> None:
    compiled, pure = failed_stream(True), failed_stream(False)
    assert compiled.compiled
    message = read_error(pure)
    assert message.startswith("replication connection lost: consuming input failed: ")
    assert read_error(compiled) == message
    compiled.close()  # finished: the compiled reader has no pointer, the loop reports it
    pure.close()
    assert (
        read_error(compiled)
        == read_error(pure)
        == ("replication connection lost: consuming input failed: connection pointer is NULL")
    )
