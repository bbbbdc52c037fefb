"""The driver's normalize → batch stage (pure): sources push commit-bounded chunks of
source rows here (`begin`, `row`, `commit`), rows are normalized as they arrive, and
whole transactions are grouped into target batches.

A batch normally holds whole source transactions only, so its position is that of its
last transaction (the end LSN for the slot, a source cursor for poll, backfill and files).
A transaction too large for one batch is cut into chunks that the writer parks in a spill
table; the position only moves with the chunk that carries its commit. Memory is
therefore bounded by the batch limits, not by transaction size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from streamer.normalize import normalize
from streamer.normalize.records import Canonical, Rejection, SourceRow

Normalizer = Callable[[SourceRow], Canonical | Rejection]

ROW_OVERHEAD_BYTES = 256


TXN = "txn"  # rows of a source transaction (all of it, or a part of a large one)
PARK = "park"  # rows of a streamed transaction, parked until its Stream Commit
STREAM_COMMIT = "stream_commit"  # no rows: apply the parked rows of `xid`
STREAM_ABORT = "stream_abort"  # no rows: discard the parked rows of `xid` / `subxid`


@dataclass(slots=True)
class TxnChunk:
    """Rows of one source transaction (all of it, or a part of a large one), or, with
    protocol 2 streaming, parked rows of a streamed one or its commit or abort."""

    commit_time_us: int
    end_lsn: int | None = None  # None: the transaction continues in a later batch
    continues_spill: bool = False  # earlier chunks of this transaction were spilled
    cursor: str | None = None  # where a cursor-kept source resumes after this chunk
    canonical: list[Canonical] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    kind: str = TXN
    xid: int = 0  # streamed chunks: the top-level transaction
    subxid: int = 0  # parked rows and aborts: the (sub)transaction

    @property
    def rows(self) -> int:
        return len(self.canonical) + len(self.rejected)


class Encoded(NamedTuple):
    """A batch's rows prepared for COPY outside the writer thread (sink/copy_binary.py,
    sink/copy_text.py)."""

    transactions: bytes  # binary COPY data when `binary`, else COPY text
    rejected: bytes  # COPY text
    binary: bool


@dataclass(slots=True)
class Batch:
    chunks: list[TxnChunk]
    checkpoint_lsn: int | None  # end LSN of the last whole transaction; None: do not move
    rows: int
    nbytes: int
    cursor: str | None = None  # resume position of the last whole chunk (cursor sources)
    guarded: bool = False  # rows may already be in the target: skip duplicates
    # The whole transactions' rows, prepared outside the writer thread; None: the
    # writer formats them itself.
    encoded: Encoded | None = None

    @property
    def transactions(self) -> int:
        return sum(1 for chunk in self.chunks if chunk.end_lsn is not None)

    @property
    def streamed(self) -> bool:
        """Holds protocol 2 stream chunks (parked rows, stream commits or aborts)."""
        return any(chunk.kind != TXN for chunk in self.chunks)

    @property
    def oldest_commit_us(self) -> int | None:
        """Commit time of the oldest committed transaction in the batch (parked rows
        have none yet)."""
        for chunk in self.chunks:
            if chunk.kind in (TXN, STREAM_COMMIT):
                return chunk.commit_time_us
        return None

    @property
    def newest_commit_us(self) -> int | None:
        """Commit time of the newest source transaction this batch completes (a chunk
        that continues in a later batch has not committed here, nor have parked rows)."""
        return max(
            (
                chunk.commit_time_us
                for chunk in self.chunks
                if (chunk.kind == TXN and chunk.end_lsn is not None) or chunk.kind == STREAM_COMMIT
            ),
            default=None,
        )


class BatchBuilder:
    """Accumulates Begin / row / Commit events; says when a batch is due and hands it out.

    `moves_lsn`: commits carry replication positions that become the batch's checkpoint
    (the slot); otherwise a batch keeps the LSN where it is and carries the cursor of its
    last chunk. `guarded`: the source may deliver rows the target already holds (poll's
    overlap, a resumed copy, a re-read file), so its batches skip duplicates."""

    def __init__(
        self,
        max_rows: int,
        max_bytes: int,
        timeout_s: float,
        *,
        normalizer: Normalizer = normalize,
        moves_lsn: bool = True,
        guarded: bool = False,
    ) -> None:
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.normalizer = normalizer
        self.moves_lsn = moves_lsn
        self.guarded = guarded
        self._done: list[TxnChunk] = []
        self._done_rows = 0
        self._done_bytes = 0
        self._open: TxnChunk | None = None
        self._open_bytes = 0
        self._oldest: float | None = None  # when the oldest pending row/txn arrived

    @property
    def in_transaction(self) -> bool:
        return self._open is not None

    @property
    def oldest_commit_us(self) -> int | None:
        """Commit time of the oldest transaction held here (for the lag gauge); parked
        rows of a streamed transaction have none until it commits."""
        for chunk in self._done:
            if chunk.kind in (TXN, STREAM_COMMIT):
                return chunk.commit_time_us
        return self._open.commit_time_us if self._open is not None else None

    @property
    def empty(self) -> bool:
        """Nothing received that is not yet handed out (an open transaction counts)."""
        return not self._done and self._open is None

    def begin(self, commit_time_us: int, now: float) -> None:
        self._open = TxnChunk(commit_time_us)
        self._open_bytes = 0
        if self._oldest is None:
            self._oldest = now

    def row(self, row: SourceRow) -> None:
        """Normalize a source row of the open transaction and hold the result."""
        self.add(self.normalizer(row), len(row.data) + len(row.merchant))

    def add(self, record: Canonical | Rejection, nbytes: int) -> None:
        """Hold an already normalized (or rejected) row of the open transaction."""
        chunk = self._open
        assert chunk is not None, "row outside a transaction"
        if type(record) is Canonical:
            chunk.canonical.append(record)
        else:
            chunk.rejected.append(record)  # type: ignore[arg-type]
        self._open_bytes += nbytes + ROW_OVERHEAD_BYTES

    # -- protocol 2: streamed transactions ---------------------------------------------
    def park(self, xid: int, subxid: int, row: SourceRow, now: float) -> None:
        """A row of a streamed transaction (in subtransaction `subxid`), normalized now
        and parked on the target until the transaction's Stream Commit."""
        done = self._done
        chunk = done[-1] if done else None
        if chunk is None or chunk.kind != PARK or chunk.xid != xid or chunk.subxid != subxid:
            chunk = TxnChunk(0, kind=PARK, xid=xid, subxid=subxid)
            done.append(chunk)
        record = self.normalizer(row)
        if type(record) is Canonical:
            chunk.canonical.append(record)
        else:
            chunk.rejected.append(record)  # type: ignore[arg-type]
        self._done_rows += 1
        self._done_bytes += len(row.data) + len(row.merchant) + ROW_OVERHEAD_BYTES
        if self._oldest is None:
            self._oldest = now

    def stream_commit(self, xid: int, end_lsn: int, commit_time_us: int, now: float) -> None:
        """The streamed transaction `xid` committed: its parked rows apply, with this
        commit's end LSN as the checkpoint."""
        self._marker(TxnChunk(commit_time_us, end_lsn, kind=STREAM_COMMIT, xid=xid), now)

    def stream_abort(self, xid: int, subxid: int) -> None:
        """Discard the parked rows of subtransaction `subxid` (all of `xid`'s when they
        are equal)."""
        self._marker(TxnChunk(0, kind=STREAM_ABORT, xid=xid, subxid=subxid), None)

    def _marker(self, chunk: TxnChunk, now: float | None) -> None:
        self._done.append(chunk)
        self._done_bytes += ROW_OVERHEAD_BYTES
        if self._oldest is None and now is not None:
            self._oldest = now

    # -- transactions ----------------------------------------------------------------
    def commit(self, end_lsn: int, cursor: str | None = None) -> None:
        """Close the open transaction: `end_lsn` is the commit's end (the slot) or the
        LSN its rows are stamped with; `cursor` the source position after it."""
        chunk = self._open
        assert chunk is not None, "commit outside a transaction"
        chunk.end_lsn = end_lsn
        chunk.cursor = cursor
        self._done.append(chunk)
        self._done_rows += chunk.rows
        self._done_bytes += self._open_bytes
        self._open = None
        self._open_bytes = 0

    def _open_full(self) -> bool:
        chunk = self._open
        return chunk is not None and (
            chunk.rows >= self.max_rows or self._open_bytes >= self.max_bytes
        )

    def full(self) -> bool:
        """A batch's worth is waiting: stop reading until the writer takes it (this bounds
        memory; a merely old batch does not stop the reading)."""
        return (
            self._open_full()
            or self._done_rows >= self.max_rows
            or self._done_bytes >= self.max_bytes
        )

    def ready(self, now: float, idle: bool) -> bool:
        """A batch is due: limits reached, or whole transactions waited long enough, or the
        stream is drained and the writer idle (low latency at low rates)."""
        if self._open_full():
            return True
        if not self._done:
            return False
        if self._done_rows >= self.max_rows or self._done_bytes >= self.max_bytes:
            return True
        return idle or (self._oldest is not None and now - self._oldest >= self.timeout_s)

    def take(self, now: float) -> Batch:
        """Hand out whole transactions, plus the open one's rows when it outgrew a batch."""
        chunks, rows, nbytes = self._done, self._done_rows, self._done_bytes
        checkpoint = None
        if self.moves_lsn:  # the last commit's end (parked rows and aborts have none)
            checkpoint = next((c.end_lsn for c in reversed(chunks) if c.end_lsn is not None), None)
        cursor = chunks[-1].cursor if chunks else None
        if self._open_full():
            assert self._open is not None
            partial = self._open
            chunks.append(partial)
            rows += partial.rows
            nbytes += self._open_bytes
            self._open = TxnChunk(partial.commit_time_us, continues_spill=True)
            self._open_bytes = 0
        self._done, self._done_rows, self._done_bytes = [], 0, 0
        self._oldest = now if self._open is not None else None
        return Batch(chunks, checkpoint, rows, nbytes, cursor, self.guarded)

    def abandon_open(self) -> None:
        """Forget a transaction in progress (shutdown): it is re-sent after restart."""
        self._open = None
        self._open_bytes = 0
