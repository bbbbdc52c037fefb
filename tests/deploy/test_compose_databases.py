"""The compose stack's databases, reproduced on local clusters: the source and target init
scripts (the table DDL and the least-privilege roles of sql/) and the streamer service's
URLs give a setup where `streamer init` and `streamer run --once` work."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from streamer.ops.embedded import LocalCluster
from streamer.ops.synthetic import SEED_ROWS

from .helpers import COMPOSE, load_yaml

pytestmark = pytest.mark.integration

INITDB = "/docker-entrypoint-initdb.d/"


def initialise(cluster: LocalCluster, service: dict[str, Any]) -> None:
    """What the postgres image's entrypoint does: create POSTGRES_DB, then run the mounted
    init scripts in order, as the superuser, in that database."""
    dbname = service["environment"]["POSTGRES_DB"]
    url = cluster.createdb(dbname)
    scripts = sorted(
        (container, (COMPOSE.parent / host).resolve())
        for host, container, *_ in (v.split(":") for v in service.get("volumes", []))
        if container.startswith(INITDB)
    )
    with psycopg.connect(url, autocommit=True) as conn:
        for _, path in scripts:
            conn.execute(path.read_text(encoding="utf-8").encode())  # several statements


def local(url: str, cluster: LocalCluster) -> str:
    """The compose URL (host `source` / `target`) pointed at the local cluster."""
    params = conninfo_to_dict(url)
    params.update(host="127.0.0.1", port=str(cluster.port))
    return make_conninfo("", **params)


def test_streamer_runs_with_the_compose_databases_and_roles(
    deploy_clusters: tuple[LocalCluster, LocalCluster],
) -> None:
    source, target = deploy_clusters
    services = load_yaml(COMPOSE)["services"]
    initialise(source, services["source"])
    initialise(target, services["target"])

    compose_env = services["streamer"]["environment"]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STREAMER_", "SOURCE_", "TARGET_", "DATALAKE_"))
        and k != "DATABASE_URL"
    }
    env.update({k: str(v) for k, v in compose_env.items()})
    env.update(
        SOURCE_DATABASE_URL=local(compose_env["SOURCE_DATABASE_URL"], source),
        TARGET_DATABASE_URL=local(compose_env["TARGET_DATABASE_URL"], target),
        STREAMER_METRICS_PORT="0",
    )
    # the roles streamer connects as are not superusers (sql/01_role.sql, 03_target_role.sql)
    for url in (env["SOURCE_DATABASE_URL"], env["TARGET_DATABASE_URL"]):
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            assert row == (False,)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streamer", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=source.root,
            check=False,
        )

    init = cli(*services["streamer-init"]["command"])
    assert init.returncode == 0, init.stdout + init.stderr

    with psycopg.connect(source.url("payments_lake")) as conn:
        for data, merchant in SEED_ROWS:
            conn.execute(
                "INSERT INTO raw_transactions (data, merchant, transactional_id)"
                " VALUES (%s, %s, gen_random_uuid())",
                (Jsonb(data), Jsonb(merchant)),
            )
    once = cli("run", "--once")
    assert once.returncode == 0, once.stdout + once.stderr
    with psycopg.connect(target.url("payments_main")) as conn:
        row = conn.execute("SELECT count(*) FROM transactions").fetchone()
    assert row == (len(SEED_ROWS),)
