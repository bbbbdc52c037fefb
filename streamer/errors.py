"""One exception tree. Each error knows its exit code, whether a retry can help, and what
the operator should do; the CLI prints `str(error)` as one line, no traceback."""

from __future__ import annotations

EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_SLOT = 3


class StreamerError(Exception):
    """streamer failed."""

    exit_code: int = EXIT_RUNTIME
    retryable: bool = False
    hint: str = ""

    def __init__(self, message: str | None = None, hint: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}. {self.hint}" if self.hint else base


class ConfigError(StreamerError):
    """invalid configuration."""

    exit_code = EXIT_USAGE


class ConnectionFailed(StreamerError):
    """cannot connect to a database."""

    retryable = True
    database = "source"  # which side failed: "source" or "target"

    def __init__(
        self, message: str | None = None, hint: str | None = None, database: str | None = None
    ) -> None:
        super().__init__(message, hint)
        if database is not None:
            self.database = database


class TargetUnavailable(ConnectionFailed):
    """lost the connection to the target database."""

    database = "target"


class SourceUnavailable(ConnectionFailed):
    """lost the replication connection to the source database."""


class PreflightFailed(StreamerError):
    """a database is not set up for streamer."""


class SlotInUse(StreamerError):
    """the replication slot is used by another process."""


class SlotProblem(StreamerError):
    """the replication slot cannot be used safely."""

    exit_code = EXIT_SLOT
    hint = "run `streamer resync` to rebuild the slot and backfill what it missed"


class SchemaChanged(StreamerError):
    """the source table changed in a way streamer cannot follow."""

    exit_code = EXIT_SLOT


class Fenced(StreamerError):
    """another streamer took over this slot's checkpoint."""

    hint = "make sure only one `streamer run` uses this slot"


class ProtocolError(StreamerError):
    """unexpected data on the replication stream."""

    retryable = True

    def __init__(
        self,
        message: str | None = None,
        hint: str | None = None,
        *,
        lsn: int | None = None,
        message_type: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.lsn = lsn  # WAL position of the frame that could not be decoded
        self.message_type = message_type  # its pgoutput message type, e.g. 'I'


class ProtocolStuck(StreamerError):
    """the replication stream keeps sending a message streamer cannot decode."""

    exit_code = EXIT_SLOT
    hint = (
        "upgrade streamer if the source runs a newer PostgreSQL, or report the LSN and "
        "message type; `streamer resync` skips past it at the cost of a backfill"
    )
