"""Clusters for the deploy/ tests that need PostgreSQL: one source and one target
(PostgreSQL 18 from the wheel), of their own, since one test creates the cluster-wide roles
of sql/."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from streamer.ops.embedded import LocalCluster, wheel_bindir
from tests.integration.conftest import FAST_SETTINGS, Lab

_counter = itertools.count()


@pytest.fixture(scope="session")
def deploy_clusters() -> Iterator[tuple[LocalCluster, LocalCluster]]:
    source = LocalCluster(wheel_bindir(), "deploy-source", **FAST_SETTINGS).start()
    try:
        target = LocalCluster(wheel_bindir(), "deploy-target", **FAST_SETTINGS).start()
        try:
            yield source, target
        finally:
            target.destroy()
    finally:
        source.destroy()


@pytest.fixture
def lab(deploy_clusters: tuple[LocalCluster, LocalCluster]) -> Iterator[Lab]:
    """A fresh source/target database pair and the CLI (see tests/integration)."""
    lab = Lab(*deploy_clusters, f"d{os.getpid()}_{next(_counter)}")
    try:
        yield lab
    finally:
        lab.cleanup()
