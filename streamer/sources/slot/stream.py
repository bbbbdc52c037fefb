"""The CopyBoth replication stream over psycopg's libpq-level `PGconn`.

psycopg 3 has no replication API, so this drives libpq directly: `send_query` starts
replication, `consume_input` + `get_copy_data(async)` read frames without blocking, and
`put_copy_data` + `flush` send our status updates. The socket is waited on with select,
so the caller's loop stays responsive (keepalive replies, signals, writer results).
Frames are read by a compiled twin of that loop when it can be bound (`reader.py`).
"""

from __future__ import annotations

import select
from typing import Final

import psycopg
from psycopg import pq

from streamer.config import describe_url
from streamer.errors import (
    PreflightFailed,
    ProtocolError,
    SlotInUse,
    SlotProblem,
    SourceUnavailable,
)
from streamer.lsn import format_lsn
from streamer.runtime.dbconn import connect_replication, replication_in_recovery
from streamer.sources.slot.reader import compiled_reader

MAX_FRAMES_PER_READ: Final = 2000
# The compiled reader's outcomes (`_speedups/_reader.pyx`) other than 0, frames read.
_ENDED, _COPY_FAILED, _CONSUME_FAILED = -1, -2, -3


class ReplicationStream:
    """One replication session; not thread-safe, owned by the pipeline's main loop."""

    def __init__(self, url: str, compiled: bool = True) -> None:
        """`compiled`: read frames with the compiled twin when it is available."""
        self._url = url
        self._pgconn: pq.abc.PGconn = connect_replication(url)
        self._pgconn.nonblocking = 1
        self._compiled_read = compiled_reader() if compiled else None

    @property
    def compiled(self) -> bool:
        """Whether frames are read by the compiled twin of `read_frames`' loop."""
        return self._compiled_read is not None

    @property
    def fileno(self) -> int:
        return int(self._pgconn.socket)

    def server_setting(self, name: str) -> str | None:
        """SHOW over the replication connection (allowed before START_REPLICATION)."""
        result = self._pgconn.exec_(f"SHOW {name}".encode())
        if result.status != pq.ExecStatus.TUPLES_OK or result.ntuples == 0:
            return None
        value = result.get_value(0, 0)
        return bytes(value).decode() if value is not None else None

    def server_version(self) -> int:
        """The source's server_version_num (e.g. 180001); 0 when unknown."""
        text = self.server_setting("server_version_num")
        return int(text) if text and text.isdigit() else 0

    def in_recovery(self) -> bool:
        """Whether this server is a standby (checked right before START_REPLICATION)."""
        return replication_in_recovery(self._pgconn)

    def enable_failover(self, slot: str) -> None:
        """ALTER_REPLICATION_SLOT … (FAILOVER true), PostgreSQL 17+ (name validated)."""
        result = self._pgconn.exec_(f"ALTER_REPLICATION_SLOT {slot} (FAILOVER true)".encode())
        if result.status != pq.ExecStatus.COMMAND_OK:
            message = (result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"").decode()
            raise PreflightFailed(
                f"cannot turn failover on for replication slot {slot!r}: {message}",
                hint="run ALTER_REPLICATION_SLOT on a replication connection as a DBA, or "
                "use --slot-failover auto",
            )

    def start(self, slot: str, publication: str, start_lsn: int, streaming: bool = False) -> None:
        """START_REPLICATION; slot and publication names were validated in config.
        `streaming`: pgoutput protocol 2, in-progress transactions sent as they run."""
        protocol = "proto_version '2', streaming 'on'" if streaming else "proto_version '1'"
        command = (
            f"START_REPLICATION SLOT {slot} LOGICAL {format_lsn(start_lsn)} "
            f"({protocol}, publication_names '\"{publication}\"')"
        )
        self._pgconn.send_query(command.encode())
        result = self._pgconn.get_result()
        if result is None or result.status != pq.ExecStatus.COPY_BOTH:
            raise self._start_error(result, slot)

    def _start_error(self, result: pq.abc.PGresult | None, slot: str) -> Exception:
        if result is None:
            return SourceUnavailable(f"the source closed the connection: {self._error()}")
        sqlstate = (result.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()
        message = (result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"").decode()
        if sqlstate == "55006":
            return SlotInUse(
                f"replication slot {slot!r} is in use: {message}",
                hint="another streamer (or client) is connected to it; stop it or use another "
                "--slot",
            )
        if sqlstate == "42704":
            return SlotProblem(f"replication slot {slot!r} does not exist on the source")
        if sqlstate.startswith("55") or "invalidated" in message:
            return SlotProblem(f"replication slot {slot!r} cannot be used: {message}")
        return SourceUnavailable(
            f"START_REPLICATION failed on {describe_url(self._url)}: {message} ({sqlstate})"
        )

    def _error(self) -> str:
        lines = self._pgconn.get_error_message().strip().splitlines()
        return lines[0] if lines else "connection lost"

    def read_frames(self, limit: int = MAX_FRAMES_PER_READ) -> list[memoryview] | list[bytes]:
        """All CopyData frames already received (up to `limit`), without blocking.

        The loop below is the specification; the compiled twin returns the same frames as
        bytes and, on failure, the outcome from which the same exception is raised (the
        frames read before it are dropped with it, as here)."""
        pgconn = self._pgconn
        read = self._compiled_read
        if read is not None:
            pointer: int | None = pgconn.pgconn_ptr  # type: ignore[attr-defined]  # C impls
            if pointer is not None:  # None: finished, which the loop below reports
                got, outcome = read(pointer, limit)
                if outcome == 0:
                    return got
                raise self._compiled_failure(outcome)
        frames: list[memoryview] = []
        try:
            pgconn.consume_input()
            get = pgconn.get_copy_data
            while len(frames) < limit:
                nbytes, data = get(1)
                if nbytes > 0:
                    frames.append(data)
                elif nbytes == 0:
                    break
                else:  # -1: the server ended COPY (shutdown, error, timeout)
                    raise self._ended()
        except psycopg.OperationalError as exc:
            raise _lost(exc) from None
        return frames

    def _compiled_failure(self, outcome: int) -> SourceUnavailable:
        """The loop's exception for a compiled read's outcome: psycopg's OperationalError
        text (its wording, the same libpq message) or the server's end of COPY."""
        if outcome == _ENDED:
            return self._ended()
        what = "consuming input" if outcome == _CONSUME_FAILED else "receiving copy data"
        return _lost(f"{what} failed: {self._pgconn.get_error_message()}")

    def _ended(self) -> SourceUnavailable:
        """The server ended COPY (shutdown, error, timeout): say why when it said so."""
        reason = ""
        result = self._pgconn.get_result()
        if result is not None and result.status == pq.ExecStatus.FATAL_ERROR:
            message = result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b""
            reason = ": " + message.decode(errors="replace")
        return SourceUnavailable(f"the source ended the replication stream{reason}")

    def send(self, message: bytes) -> None:
        """Queue a CopyData message to the server and push it out."""
        try:
            self._pgconn.put_copy_data(message)
            while self._pgconn.flush() == 1:
                _, writable, _ = select.select([], [self.fileno], [], 10.0)
                if not writable:
                    raise ProtocolError("timed out sending a status update to the source")
        except psycopg.OperationalError as exc:
            raise SourceUnavailable(f"cannot send to the source: {_first_line(exc)}") from None

    def close(self) -> None:
        """Close the connection; the server sees the client go and frees the slot."""
        self._pgconn.finish()


def _lost(error: BaseException | str) -> SourceUnavailable:
    """The replication connection failed while reading (psycopg's error, or its text)."""
    return SourceUnavailable(f"replication connection lost: {_first_line(error)}")


def _first_line(exc: BaseException | str) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
