"""Whether the `transactions` table takes streamer's binary COPY data (sink/copy_binary.py).

Binary data is only right for the column types it was written for: the server reads the
bytes as whatever type the column has now, and an operator's `ALTER … TYPE` would turn a
value into another one without an error (a processing time of 7 into 1e-44). So the
writer checks the types when it claims the checkpoint, and again inside every transaction
that sends binary data, after its COPY: the COPY's lock keeps an ALTER out until the
commit.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from streamer.lsn import format_lsn
from streamer.sink.copy_binary import binary_fits
from streamer.sink.tables import TRANSACTIONS, column_types
from streamer.sources.batching import Batch

log = logging.getLogger(__name__)

# invalid_binary_representation, bad_copy_file_format: the encoder's fault, never the data's
BINARY_REFUSALS = frozenset({"22P03", "22P04"})


class TypesChanged(Exception):
    """The `transactions` column types changed since they were checked."""


class BinaryGuard:
    def __init__(self, schema: str) -> None:
        self._schema = schema
        self.ok = False  # until `check`: COPY text
        self._warned = False

    def check(self, conn: psycopg.Connection[Any]) -> bool:
        """Read the column types (inside the caller's transaction); warn once when they
        are not streamer's own."""
        fits = binary_fits(column_types(conn, self._schema, TRANSACTIONS))
        if not fits and not self._warned:
            log.warning(
                "%s.%s does not have streamer's own column types: writing it with COPY text",
                self._schema,
                TRANSACTIONS,
            )
            self._warned = True
        self.ok = fits
        return fits

    def verify(self, cur: psycopg.Cursor[Any], batch: Batch) -> None:
        """After the batch's binary COPY, in its transaction: raise TypesChanged (the
        transaction then rolls back) if the types are no longer the ones it was for."""
        if batch.encoded is not None and batch.encoded.binary and not self.check(cur.connection):
            raise TypesChanged

    @staticmethod
    def note_refusal(batch: Batch, exc: psycopg.Error) -> None:
        """A refusal of the binary data itself is a bug to report, not bad data: say so
        louder than the staging retry that follows."""
        if batch.encoded is not None and batch.encoded.binary and exc.sqlstate in BINARY_REFUSALS:
            log.warning(
                "the target refused the binary COPY data of the batch up to %s (%s); it is "
                "written through staging as COPY text: please report this",
                format_lsn(batch.checkpoint_lsn or 0),
                exc.sqlstate,
            )
