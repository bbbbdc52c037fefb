"""`run --once --pushgateway`: the catch-up run's final metrics reach a real Pushgateway."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer.ops.embedded import free_port
from streamer.ops.synthetic import SEED_ROWS
from tests.deploy.helpers import binary
from tests.integration.conftest import Lab

pytestmark = pytest.mark.integration


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "pushgateway.log").open("wb")
    proc = subprocess.Popen(
        [binary("prometheus-pushgateway"), f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(url + "/-/ready", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_once_pushes_final_metrics(lab: Lab, pushgateway: str) -> None:
    assert lab.cli("init").returncode == 0
    lab.insert(SEED_ROWS)
    result = lab.cli("run", "--once", env=lab.env(STREAMER_PUSHGATEWAY_URL=pushgateway))
    assert result.returncode == 0, result.stderr
    with urllib.request.urlopen(pushgateway + "/metrics", timeout=5) as response:
        text = response.read().decode()
    lines = [line for line in text.splitlines() if line.startswith("streamer_transactions_total")]
    assert lines and 'job="streamer"' in lines[0] and lines[0].endswith(" 1"), lines
    assert (
        'streamer_rows_total{instance="",job="streamer",outcome="normalized"' in text
        or "streamer_rows_total{" in text
    )


def test_unreachable_pushgateway_is_one_clear_error(lab: Lab) -> None:
    assert lab.cli("init").returncode == 0
    env = lab.env(STREAMER_PUSHGATEWAY_URL=f"http://127.0.0.1:{free_port()}")
    result = lab.cli("run", "--once", env=env)
    assert result.returncode == 1
    assert "Pushgateway" in result.stderr and "Traceback" not in result.stderr
