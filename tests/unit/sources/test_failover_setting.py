"""STREAMER_SLOT_FAILOVER against the server version, multi-host URLs, the host gauge."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from psycopg.conninfo import conninfo_to_dict

from streamer.errors import PreflightFailed
from streamer.runtime.dbconn import conninfo
from streamer.runtime.metrics import Metrics
from streamer.sources.slot.admin import failover_wanted


@pytest.mark.parametrize(
    ("setting", "version", "wanted"),
    [
        ("auto", 170000, True),
        ("auto", 180001, True),
        ("auto", 160004, False),
        ("on", 170000, True),
        ("off", 180000, False),
        ("off", 150000, False),
    ],
)
def test_failover_wanted(setting: str, version: int, wanted: bool) -> None:
    assert failover_wanted(setting, version) is wanted


def test_failover_on_before_17_is_refused_with_a_hint() -> None:
    with pytest.raises(PreflightFailed, match="needs PostgreSQL 17") as info:
        failover_wanted("on", 160000)
    assert "auto or off" in str(info.value)


def test_source_host_gauge_marks_one_configured_host() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    hosts = ["db1:5432", "db2:5432"]
    metrics.set_source_host("db1:5432", hosts)
    metrics.set_source_host("db2:5432", hosts)
    value = registry.get_sample_value
    assert value("streamer_source_host_info", {"host": "db2:5432"}) == 1
    assert value("streamer_source_host_info", {"host": "db1:5432"}) == 0
    assert value("streamer_source_host_info", {"host": "other"}) == 0


def test_a_multi_host_url_asks_for_the_primary_unless_it_chooses() -> None:
    many = conninfo_to_dict(conninfo("postgresql://u@h1:5432,h2:5432/db"))
    assert many["target_session_attrs"] == "primary"
    chosen = "postgresql://u@h1,h2/db?target_session_attrs=read-write"
    assert conninfo_to_dict(conninfo(chosen))["target_session_attrs"] == "read-write"
    assert "target_session_attrs" not in conninfo_to_dict(conninfo("postgresql://u@h1/db"))
