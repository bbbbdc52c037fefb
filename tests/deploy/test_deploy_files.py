"""deploy/: the compose stack, the image, the systemd unit and the cron recipe are
consistent with each other and with the code (no Docker engine here: checked statically)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values

from streamer.cli import COMMON_OPTIONS
from streamer.ops.demo import SOURCE_DDL

from .helpers import (
    COMPOSE,
    DASHBOARD,
    DEPLOY,
    PROMETHEUS_CONFIG,
    ROOT,
    binary,
    load_yaml,
    run,
)

pytestmark = pytest.mark.integration

SYSTEMD = DEPLOY / "systemd"
CRON = DEPLOY / "cron"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
# Settings the code reads (flags' env names, the URL fallbacks, the --once outputs).
KNOWN_ENV = {env for _, _, env, _ in COMMON_OPTIONS} | {
    "DATALAKE_DATABASE_URL",
    "DATABASE_URL",
    "STREAMER_PUSHGATEWAY_URL",
    "STREAMER_METRICS_TEXTFILE",
    "STREAMER_LOG_FORMAT",
}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE)
    return data


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host path, container path) of the service's bind mounts; named volumes skipped."""
    mounts = []
    for volume in service.get("volumes", []):
        host, container = volume.split(":")[:2]
        if host.startswith((".", "/")):
            mounts.append(((COMPOSE.parent / host).resolve(), container))
    return mounts


def streamer_services() -> dict[str, dict[str, Any]]:
    return {
        name: s for name, s in compose()["services"].items() if s.get("image") == "streamer:local"
    }


# -- docker-compose.yml ----------------------------------------------------------------------
def test_compose_has_the_whole_stack() -> None:
    services = compose()["services"]
    assert {"source", "target", "streamer", "prometheus", "pushgateway", "grafana"} <= set(services)
    source_command = " ".join(services["source"]["command"])
    assert "wal_level=logical" in source_command


def test_compose_references_files_that_exist() -> None:
    for name, service in compose()["services"].items():
        for host, container in bind_mounts(service):
            assert host.exists(), f"{name}: {host} (mounted at {container}) does not exist"
        build = service.get("build")
        if build:
            context = (COMPOSE.parent / build["context"]).resolve()
            assert context == ROOT, name
            assert (context / build["dockerfile"]).resolve() == DOCKERFILE, name


def test_compose_source_init_scripts_create_the_code_s_table() -> None:
    """The first init script holds exactly the DDL of streamer/demo.py, then the DBA
    scripts of sql/ run, in that order."""
    mounts = sorted(
        (container, host)
        for host, container in bind_mounts(compose()["services"]["source"])
        if container.startswith("/docker-entrypoint-initdb.d/")
    )
    hosts = [host for _, host in mounts]
    assert hosts[1:] == [ROOT / "sql" / "01_role.sql", ROOT / "sql" / "02_publication.sql"]
    sql = "\n".join(line for line in hosts[0].read_text().splitlines() if not line.startswith("--"))
    assert sql.strip() == SOURCE_DDL.strip()


def test_compose_streamer_settings_match_the_rest_of_the_stack() -> None:
    services = streamer_services()
    assert {"streamer-init", "streamer"} <= set(services)
    assert services["streamer-init"]["command"] == ["init"]
    assert services["streamer"]["command"] == ["run"]
    assert services["streamer"]["depends_on"]["streamer-init"] == {
        "condition": "service_completed_successfully"
    }
    for name, service in services.items():
        env = service["environment"]
        assert set(env) <= KNOWN_ENV, name
        assert "@source:5432/payments_lake" in env["SOURCE_DATABASE_URL"], name
        assert "@target:5432/payments_main" in env["TARGET_DATABASE_URL"], name
    env = services["streamer"]["environment"]
    assert env["STREAMER_METRICS_HOST"] == "0.0.0.0"
    port = str(env["STREAMER_METRICS_PORT"])
    assert port in [str(p) for p in services["streamer"]["expose"]]
    # Prometheus scrapes that service and port, and the Pushgateway service
    targets = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]
    }
    assert targets["streamer"] == [f"streamer:{port}"]
    assert targets["pushgateway"] == ["pushgateway:9091"]
    # the Postgres databases the URLs name are the ones the containers create
    all_services = compose()["services"]
    assert all_services["source"]["environment"]["POSTGRES_DB"] == "payments_lake"
    assert all_services["target"]["environment"]["POSTGRES_DB"] == "payments_main"


def test_compose_prometheus_gets_config_and_rules_where_the_config_expects_them() -> None:
    mounts = dict(
        (container, host) for host, container in bind_mounts(compose()["services"]["prometheus"])
    )
    config_path = "/etc/prometheus/prometheus.yml"
    assert mounts[config_path] == PROMETHEUS_CONFIG
    for rule_file in load_yaml(PROMETHEUS_CONFIG)["rule_files"]:
        in_container = os.path.join(os.path.dirname(config_path), rule_file)
        assert mounts[in_container] == PROMETHEUS_CONFIG.parent / rule_file


def test_compose_grafana_provisions_the_datasource_and_the_dashboard() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = dict((container, host) for host, container in bind_mounts(grafana))
    datasources_dir = mounts["/etc/grafana/provisioning/datasources"]
    dashboards_dir = mounts["/etc/grafana/provisioning/dashboards"]
    datasources = [
        d for f in sorted(datasources_dir.glob("*.yml")) for d in load_yaml(f)["datasources"]
    ]
    assert [(d["type"], d["url"]) for d in datasources] == [
        ("prometheus", "http://prometheus:9090")
    ]
    assert "9090:9090" in " ".join(compose()["services"]["prometheus"]["ports"])
    providers = [p for f in sorted(dashboards_dir.glob("*.yml")) for p in load_yaml(f)["providers"]]
    assert len(providers) == 1
    dashboard_dir = providers[0]["options"]["path"]
    assert mounts[f"{dashboard_dir}/streamer.json"] == DASHBOARD


# -- Dockerfile --------------------------------------------------------------------------------
def test_dockerfile_runs_streamer_as_non_root() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users, "no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert re.search(r'^ENTRYPOINT \["streamer"\]$', text, re.M)
    assert re.search(r'^CMD \["run"\]$', text, re.M)
    # COPY sources from the build context (the repository root) exist
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), source
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    assert {"!pyproject.toml", "!README.md", "!streamer/"} <= set(ignore)


# -- systemd -------------------------------------------------------------------------------------
def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (SYSTEMD / "streamer.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_systemd_unit_runs_streamer_hardened() -> None:
    unit = unit_settings()
    assert unit["ExecStart"][0].endswith("/streamer run")
    assert unit["Restart"] == ["always"]
    assert unit["User"] == ["streamer"]
    assert unit["EnvironmentFile"] == ["/etc/streamer/streamer.env"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert unit[key] == ["yes"], key
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["CapabilityBoundingSet"] == [""]


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """No unknown keys or bad values (systemd-analyze only warns on those: any output fails).
    ExecStart points to a stand-in, since streamer is not installed under /opt here."""
    systemd_analyze = binary("systemd-analyze")
    unit = tmp_path / "streamer.service"
    executable = unit_settings()["ExecStart"][0].split()[0]
    unit.write_text((SYSTEMD / "streamer.service").read_text().replace(executable, "/bin/true"))
    result = run(systemd_analyze, "verify", unit)
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""
    # exposure level at most 2.0 of 10 ("OK"); the unit scores 1.2
    security = run(systemd_analyze, "security", "--offline=yes", "--threshold=20", unit)
    assert security.returncode == 0, security.stdout[-2000:] + security.stderr


def test_env_example_sets_only_known_settings() -> None:
    values = dotenv_values(SYSTEMD / "streamer.env.example")
    assert {"SOURCE_DATABASE_URL", "TARGET_DATABASE_URL"} <= set(values)
    assert set(values) <= KNOWN_ENV
    commented = re.findall(r"^#([A-Z_]+)=", (SYSTEMD / "streamer.env.example").read_text(), re.M)
    assert set(commented) <= KNOWN_ENV


# -- cron ----------------------------------------------------------------------------------------
def test_cron_entry_runs_the_wrapper() -> None:
    assert "." not in (CRON / "streamer").name  # cron ignores /etc/cron.d files with a dot
    entries = [
        line
        for line in (CRON / "streamer").read_text().splitlines()
        if line and not line.startswith("#") and not re.match(r"^[A-Z_]+=", line)
    ]
    assert len(entries) == 1
    fields = entries[0].split()
    assert len(fields) >= 7
    assert fields[5] == "streamer"  # /etc/cron.d lines name the user
    assert fields[6] == "/usr/local/bin/streamer-once"


def test_cron_wrapper_runs_once_with_the_pushgateway(tmp_path: Path) -> None:
    wrapper = CRON / "streamer-once"
    assert wrapper.stat().st_mode & stat.S_IXUSR
    fake = tmp_path / "streamer"
    fake.write_text('#!/bin/sh\nprintf "%s|" "$@"\nprintf "%s" "$SOURCE_DATABASE_URL"\n')
    fake.chmod(0o755)
    env_file = tmp_path / "streamer.env"
    env_file.write_text(
        (SYSTEMD / "streamer.env.example").read_text()
        + "STREAMER_PUSHGATEWAY_URL=http://pushgateway:9091\n"
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "STREAMER_ENV_FILE": str(env_file),
        "STREAMER_BIN": str(fake),
        "STREAMER_LOCK_FILE": str(tmp_path / "lock"),
    }
    result = subprocess.run(
        [str(wrapper)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    args, url = result.stdout.rsplit("|", 1)
    assert args.split("|") == ["run", "--once", "--pushgateway", "http://pushgateway:9091"]
    assert url == dotenv_values(env_file)["SOURCE_DATABASE_URL"]  # quotes stripped by sh

    env_file.write_text((SYSTEMD / "streamer.env.example").read_text())
    result = subprocess.run(
        [str(wrapper)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode != 0
    assert "STREAMER_PUSHGATEWAY_URL" in result.stderr
