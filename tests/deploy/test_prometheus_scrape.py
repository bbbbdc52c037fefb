"""A real Prometheus (the Debian binary) scrapes a running `streamer run`, with the alert
rules of deploy/prometheus loaded, and a row applied by streamer reads back through
Prometheus' HTTP API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from streamer.ops.embedded import free_port
from streamer.ops.synthetic import SEED_ROWS
from tests.integration.conftest import Lab

from .helpers import RULES, binary

pytestmark = pytest.mark.integration

T = TypeVar("T")
WAIT_S = 30.0


def eventually(fetch: Callable[[], T | None], what: str, timeout: float = WAIT_S) -> T:
    """Poll until `fetch` returns something other than None (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def http_json(url: str) -> Any | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def http_ok(url: str) -> bool | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return True if response.status == 200 else None
    except (urllib.error.URLError, OSError):
        return None


class Prometheus:
    def __init__(self, base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.base, self.proc, self.log = base, proc, log

    def api(self, path: str, **params: str) -> Any | None:
        body = http_json(f"{self.base}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        return body["data"] if body and body.get("status") == "success" else None

    def value(self, query: str) -> float | None:
        data = self.api("query", query=query)
        if not data or not data["result"]:
            return None
        return float(data["result"][0]["value"][1])


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def prometheus(tmp_path: Path, metrics_port: int) -> Iterator[Prometheus]:
    """Prometheus scraping 127.0.0.1:<metrics_port> every second as job "streamer"."""
    executable = binary("prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {
                        "job_name": "streamer",
                        "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
                    }
                ],
            }
        )
    )
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                executable,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", proc, log)
    try:
        eventually(
            lambda: http_ok(f"{server.base}/-/ready") if proc.poll() is None else False,
            "Prometheus to be ready",
        )
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def test_prometheus_scrapes_a_running_streamer(
    lab: Lab, prometheus: Prometheus, metrics_port: int
) -> None:
    proc = lab.start("run", env=lab.env(STREAMER_METRICS_PORT=str(metrics_port)))
    try:
        eventually(lambda: http_ok(f"http://127.0.0.1:{metrics_port}/metrics"), "/metrics")
        # slot and checkpoint exist: an insert from now on is streamed
        assert lab.wait_for(lambda: lab.checkpoint() is not None, timeout=WAIT_S)
        lab.insert(SEED_ROWS[:1])
        assert lab.wait_for(lambda: len(lab.target_ids()) == 1, timeout=WAIT_S)

        rows = eventually(
            lambda: prometheus.value('sum(streamer_rows_total{job="streamer"})'),
            "streamer_rows_total in Prometheus",
        )
        assert rows >= 1
        assert prometheus.value('up{job="streamer"}') == 1
        info = prometheus.api("query", query='streamer_info{job="streamer"}')
        assert info and info["result"][0]["metric"]["slot"] == lab.name

        # the deploy rules load and evaluate against the live series
        groups = eventually(
            lambda: (
                g
                if (g := (prometheus.api("rules") or {}).get("groups"))
                and all(r.get("lastEvaluation", "").startswith("2") for x in g for r in x["rules"])
                else None
            ),
            "the alert rules to be evaluated",
        )
        assert [r["health"] for g in groups for r in g["rules"]] == ["ok"] * sum(
            len(g["rules"]) for g in groups
        )
    finally:
        code = lab.stop(proc)
    assert code == 0, lab.output[-3000:]
