"""The bucket URL and the partition-resume rule (pure, no network)."""

from __future__ import annotations

import pytest

from streamer.errors import EXIT_USAGE, ConfigError
from streamer.sources.files.s3 import parse_files_url, partition_of, start_after

PREFIX = "raw-payments/"


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("s3://yuno-payments-lake/raw-payments/", ("yuno-payments-lake", "raw-payments/")),
        ("S3://lake", ("lake", "")),
        ("s3://lake/", ("lake", "")),
        ("s3://lake/a/b", ("lake", "a/b")),
    ],
)
def test_parse_files_url(url: str, parsed: tuple[str, str]) -> None:
    assert parse_files_url(url) == parsed


@pytest.mark.parametrize(
    "url", ["", "lake/raw", "s3:/lake", "https://lake/raw", "s3://", "s3:///raw"]
)
def test_bad_files_url_is_a_usage_error_with_a_hint(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_files_url(url)
    assert raised.value.exit_code == EXIT_USAGE
    assert "s3://bucket/prefix/" in str(raised.value)


@pytest.mark.parametrize(
    ("key", "partition"),
    [
        ("raw-payments/2024-12-13/transactions_001.json", "raw-payments/2024-12-13/"),
        ("raw-payments/2024-12-13/deep/x.csv", "raw-payments/2024-12-13/"),
        ("raw-payments/2024-12-13.json", None),
        ("raw-payments/manual/x.json", None),
        ("raw-payments/2024-13-01/x.json", None),
        ("other/2024-12-13/x.json", None),
    ],
)
def test_partition_of(key: str, partition: str | None) -> None:
    assert partition_of(key, PREFIX) == partition


def test_start_after_looks_back_from_the_newest_completed_partition() -> None:
    assert start_after(PREFIX, "raw-payments/2024-12-13/", 2) == "raw-payments/2024-12-11"
    assert start_after(PREFIX, "raw-payments/2024-03-01/", 1) == "raw-payments/2024-02-29"
    assert start_after(PREFIX, "raw-payments/2024-12-13/", 0) == "raw-payments/2024-12-13"


def test_start_after_keeps_every_key_of_the_lookback_window() -> None:
    keys = [
        "raw-payments/2024-12-10/z.json",
        "raw-payments/2024-12-11/a.json",
        "raw-payments/2024-12-11/z.json",
        "raw-payments/2024-12-13/transactions_001.json",
        "raw-payments/2024-12-14/transactions_004.parquet",
    ]
    after = start_after(PREFIX, "raw-payments/2024-12-13/", 2)
    assert after is not None
    assert [k for k in keys if k > after] == keys[1:]


@pytest.mark.parametrize(
    ("newest", "full"),
    [
        (None, False),
        ("raw-payments/2024-12-13/", True),
        ("raw-payments/manual/", False),
        ("x/", False),
    ],
)
def test_start_after_lists_everything_when_it_cannot_resume(newest: str | None, full: bool) -> None:
    assert start_after(PREFIX, newest, 3, full=full) is None


def test_negative_lookback_is_refused() -> None:
    with pytest.raises(ValueError, match="lookback_days"):
        start_after(PREFIX, "raw-payments/2024-12-13/", -1)
