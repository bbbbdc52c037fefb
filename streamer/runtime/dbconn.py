"""Opening database connections with safe defaults and one translation of driver errors.

Both edges (source and target) connect through here, so every connection error reads the
same way: what failed, where (without the password), and what to do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg.conninfo
from psycopg import pq

from streamer.config import describe_url
from streamer.errors import ConnectionFailed, PreflightFailed, StreamerError

# TCP keepalives detect a dead peer on an idle connection; the libpq defaults leave it to
# the kernel (2 hours). Callers' explicit settings win.
SAFE_DEFAULTS: dict[str, Any] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 20,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # ms: unacknowledged data (a cut link) fails the socket
    "application_name": "streamer",
}

# libpq messages for certificate and TLS setup problems: retrying cannot fix these.
_TLS_MARKERS = (
    "certificate",
    "does not match host name",
    "ssl error",
    "server does not support ssl",
    "sslmode",
    "ssl syscall",
    "root certificate file",
)

_ENV_HINT = {
    "source": "check SOURCE_DATABASE_URL / --source and that the server is running",
    "target": "check TARGET_DATABASE_URL / --target and that the server is running",
    "standby": "check the --standby URL and that the standby is running",
}


def conninfo(url: str, **extra: Any) -> str:
    """The URL with our defaults filled in (the user's own parameters take precedence).

    With several hosts and no target_session_attrs, libpq would take the first that
    answers, a standby included; both edges need the primary, so ask for it."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    if "," in str(params.get("host") or params.get("hostaddr") or ""):
        params.setdefault("target_session_attrs", "primary")
    merged = {**SAFE_DEFAULTS, **params, **extra}
    return psycopg.conninfo.make_conninfo("", **merged)


def _first_line(message: str) -> str:
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    text = lines[0] if lines else "unknown error"
    # libpq prefixes: 'connection to server at "h" (addr), port p failed: reason'
    if " failed: " in text:
        text = text.rsplit(" failed: ", 1)[1]
    for severity in ("FATAL:", "ERROR:"):
        text = text.removeprefix(severity).strip()
    return text.rstrip(".")


def connect_error(role: str, url: str, message: str) -> StreamerError:
    """A libpq connection failure → one actionable error (never includes the password)."""
    reason = _first_line(message)
    where = f"the {role} database at {describe_url(url)}"
    lowered = reason.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return PreflightFailed(f"cannot log in to {where}: {reason}", hint="check the credentials")
    if "does not exist" in lowered:
        return PreflightFailed(f"cannot connect to {where}: {reason}", hint=_ENV_HINT[role])
    if any(marker in lowered for marker in _TLS_MARKERS):
        return PreflightFailed(
            f"TLS verification failed for {where}: {reason}",
            hint="check sslmode/sslrootcert in the URL and the names in the server certificate",
        )
    if "no pg_hba.conf entry" in lowered:
        return PreflightFailed(
            f"{where} refused the connection: {reason}",
            hint="add a pg_hba.conf line for this role (see README, Security)",
        )
    return ConnectionFailed(
        f"cannot connect to {where}: {reason}", hint=_ENV_HINT[role], database=role
    )


def connect(role: str, url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A regular psycopg connection, errors translated."""
    try:
        return psycopg.connect(conninfo(url), **kwargs)
    except psycopg.OperationalError as exc:
        raise connect_error(role, url, str(exc)) from None


def connect_replication(url: str) -> pq.abc.PGconn:
    """A `replication=database` libpq connection for the CopyBoth stream."""
    pgconn = pq.PGconn.connect(conninfo(url, replication="database").encode())
    if pgconn.status != pq.ConnStatus.OK:
        message = pgconn.get_error_message()
        pgconn.finish()
        raise connect_error("source", url, message)
    return pgconn


def replication_in_recovery(pgconn: pq.abc.PGconn) -> bool:
    """`pg_is_in_recovery()` over a replication connection (SQL is allowed there before
    START_REPLICATION): a standby must not be streamed from or get a new slot."""
    result = pgconn.exec_(b"SELECT pg_is_in_recovery()")
    if result.status != pq.ExecStatus.TUPLES_OK or result.ntuples == 0:
        reason = _first_line(pgconn.get_error_message())
        raise ConnectionFailed(
            f"cannot ask the source whether it is a standby: {reason}",
            database="source",
        )
    return bytes(result.get_value(0, 0) or b"") == b"t"


def pinned(url: str, conn: psycopg.Connection[Any]) -> str:
    """`url` narrowed to the one server `conn` reached, so a second connection (the
    replication stream) lands on the server whose slot was just checked."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    params.update(host=conn.info.host, port=str(conn.info.port))
    if "hostaddr" in params:
        params["hostaddr"] = conn.info.hostaddr
    return psycopg.conninfo.make_conninfo("", **params)


@contextlib.contextmanager
def translated(role: str, url: str, doing: str) -> Iterator[None]:
    """Translate driver errors raised while `doing` something into our error tree."""
    try:
        yield
    except StreamerError:
        raise
    except psycopg.OperationalError as exc:
        raise ConnectionFailed(
            f"lost the {role} database at {describe_url(url)} while {doing}: "
            f"{_first_line(str(exc))}",
            database=role,
        ) from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise PreflightFailed(
            f"missing privilege on the {role} database while {doing}: {_first_line(str(exc))}",
            hint="run the scripts in sql/ as a DBA (see README, Security)",
        ) from None
