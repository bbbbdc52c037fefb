"""Creating a slot together with an exported snapshot: the rows visible in that snapshot
are exactly those committed before the slot's consistent point, so copying them and then
streaming from the consistent point leaves no gap and no overlap.

The snapshot lives only while the creating replication connection stays open and idle,
so this is a context manager that holds it for the duration of the copy.
"""

from __future__ import annotations

from types import TracebackType

from psycopg import pq

from streamer.config import describe_url
from streamer.errors import PreflightFailed, SlotProblem, SourceUnavailable
from streamer.lsn import parse_lsn
from streamer.runtime.dbconn import connect_replication, replication_in_recovery
from streamer.sources.slot.admin import failover_wanted


class ExportedSlot:
    def __init__(self, url: str, slot: str, failover: str = "auto") -> None:
        self._url = url
        self._slot = slot
        self._failover = failover  # STREAMER_SLOT_FAILOVER
        self.failover = False  # whether the slot was created with failover
        self._pgconn: pq.abc.PGconn | None = None
        self.consistent_lsn = 0
        self.snapshot_name = ""

    def __enter__(self) -> ExportedSlot:
        self._pgconn = pgconn = connect_replication(self._url)
        try:
            if replication_in_recovery(pgconn):
                raise SourceUnavailable(
                    f"the source at {describe_url(self._url)} is a standby: the slot is "
                    "created on the primary",
                    hint="list the primary in the source URL",
                )
            self.failover = failover_wanted(self._failover, pgconn.server_version)
        except BaseException:
            pgconn.finish()
            raise
        # Slot names were validated in config (^[a-z0-9_]{1,63}$); replication commands
        # take no parameters.
        options = "SNAPSHOT 'export'" + (", FAILOVER true" if self.failover else "")
        result = pgconn.exec_(
            f"CREATE_REPLICATION_SLOT {self._slot} LOGICAL pgoutput ({options})".encode()
        )
        if result.status != pq.ExecStatus.TUPLES_OK:
            sqlstate = (result.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()
            message = (result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"").decode()
            pgconn.finish()
            if sqlstate == "42710":
                raise SlotProblem(f"replication slot {self._slot!r} already exists", hint="")
            raise PreflightFailed(f"cannot create replication slot {self._slot!r}: {message}")
        self.consistent_lsn = parse_lsn(bytes(result.get_value(0, 1) or b"").decode())
        self.snapshot_name = bytes(result.get_value(0, 2) or b"").decode()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pgconn is not None:
            self._pgconn.finish()
            self._pgconn = None
