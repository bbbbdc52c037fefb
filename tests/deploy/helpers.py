"""Paths, file loaders and tool lookup shared by the deploy/ tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamer.runtime.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "streamer.rules.yml"
RULES_TEST = PROMETHEUS_DIR / "streamer.rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "streamer.json"
COMPOSE = DEPLOY / "docker-compose.yml"

# `streamer_rows_total` in `rate(streamer_rows_total{outcome="rejected"}[5m])`, not the
# `streamer` of `job="streamer"`.
METRIC_RE = re.compile(r"(?<![A-Za-z0-9_:])streamer_[a-z_]+")

# Debian package that provides each binary (installed by .ci/run).
PACKAGES = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "systemd-analyze": "systemd",
}


def binary(name: str) -> str:
    """The path of a system binary. Missing: a failure under CI (.ci/run installs it), a
    skip on a developer machine without the package."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not found: apt-get install {PACKAGES.get(name, name)}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (.ci/run should have installed it)")
    pytest.skip(message)


def run(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, check=False
    )


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def exported_metric_names() -> set[str]:
    """Every sample name the registry can export: counters as `_total` (and `_created`),
    histograms as `_bucket`, `_sum`, `_count`, whether or not a labelled child exists yet."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
    }
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def metric_names(expr: str) -> set[str]:
    return set(METRIC_RE.findall(expr))
