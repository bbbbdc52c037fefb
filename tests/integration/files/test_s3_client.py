"""The bucket client against a real S3 HTTP endpoint (moto server on 127.0.0.1)."""

from __future__ import annotations

import gzip
import io
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamer.normalize import SourceRow
from streamer.sources.files.errors import BucketNotFound, BucketUnavailable, ObjectChanged
from streamer.sources.files.formats import FileFormat, read_records
from streamer.sources.files.s3 import Bucket, make_client, start_after
from tests.integration.files.conftest import free_port
from tests.unit.files.helpers import RECORDS, jsonl_file

pytestmark = pytest.mark.integration
PREFIX = "raw-payments/"


def _put(admin: Any, bucket: str, key: str, body: bytes) -> str:
    etag: str = admin.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]
    return etag.strip('"')


def test_listing_pages_past_1000_keys_and_resumes_after_a_partition(
    admin: Any, bucket_name: str
) -> None:
    keys = [
        f"{PREFIX}2024-12-{day:02d}/t_{n:04d}.jsonl" for day in (10, 11, 12, 13) for n in range(300)
    ]
    for key in keys:
        _put(admin, bucket_name, key, b"")
    _put(admin, bucket_name, "elsewhere/x.json", b"")
    bucket = Bucket(bucket_name, make_client())
    listed = list(bucket.list_objects(PREFIX))
    assert [o.ref.key for o in listed] == keys
    assert all(o.ref.etag and '"' not in o.ref.etag and o.ref.size == 0 for o in listed)
    assert [o.ref.key for o in bucket.list_objects(PREFIX, page_size=250)] == keys
    after = start_after(PREFIX, f"{PREFIX}2024-12-13/", 1)
    resumed = [o.ref.key for o in bucket.list_objects(PREFIX, after, page_size=100)]
    assert resumed == keys[600:]  # the 12th and 13th only
    assert resumed[0] == f"{PREFIX}2024-12-12/t_0000.jsonl"


def test_streamed_read_of_a_gzipped_object(admin: Any, bucket_name: str) -> None:
    key = f"{PREFIX}2024-12-13/transactions_002.jsonl.gz"
    _put(admin, bucket_name, key, gzip.compress(jsonl_file(RECORDS * 100)))
    bucket = Bucket(bucket_name)
    (listed,) = bucket.list_objects(PREFIX)
    with bucket.open_object(listed.ref) as body:
        records = list(read_records(FileFormat.JSONL_GZ, body, listed.ref, max_json_bytes=1))
    assert len(records) == 300 and all(isinstance(r.item, SourceRow) for r in records)


def test_a_replaced_object_is_not_read_as_the_listed_version(admin: Any, bucket_name: str) -> None:
    key = f"{PREFIX}2024-12-13/t.json"
    _put(admin, bucket_name, key, b"[]")
    bucket = Bucket(bucket_name)
    (listed,) = bucket.list_objects(PREFIX)
    _put(admin, bucket_name, key, b"[1]")
    with pytest.raises(ObjectChanged) as raised:
        bucket.open_object(listed.ref)
    assert not raised.value.retryable
    assert "PreconditionFailed" in str(raised.value) and key in str(raised.value)


def test_a_missing_bucket_is_a_clear_error_that_is_not_retried(s3_endpoint: str) -> None:
    with pytest.raises(BucketNotFound) as raised:
        list(Bucket("no-such-bucket").list_objects(PREFIX))
    assert not raised.value.retryable
    assert "no-such-bucket" in str(raised.value) and "STREAMER_FILES_URL" in str(raised.value)


def test_an_unreachable_endpoint_is_retryable_and_quick(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    client = make_client(connect_timeout=0.5, read_timeout=0.5, max_attempts=2)
    began = time.monotonic()
    with pytest.raises(BucketUnavailable) as raised:
        list(Bucket("lake", client).list_objects(PREFIX))
    assert time.monotonic() - began < 10
    assert raised.value.retryable and raised.value.database == "bucket"
    assert "testing" not in str(raised.value)  # no credentials in messages


def test_spooled_parquet_object_reads_like_the_file(
    admin: Any, bucket_name: str, tmp_path: Path
) -> None:
    table = pa.Table.from_pylist(
        [
            {
                "transactional_id": r["transactional_id"],
                "merchant_id": r["merchant"]["id"],
                "data": str(r["data"]).replace("'", '"'),
            }
            for r in RECORDS
        ]
    )
    out = io.BytesIO()
    pq.write_table(table, out)
    key = f"{PREFIX}2024-12-14/transactions_004.parquet"
    _put(admin, bucket_name, key, out.getvalue())
    bucket = Bucket(bucket_name)
    (listed,) = bucket.list_objects(PREFIX)
    path = bucket.spool_object(listed.ref, tmp_path)
    assert path.read_bytes() == out.getvalue()
    records = list(read_records(FileFormat.PARQUET, path, listed.ref, max_json_bytes=1))
    assert [r.position for r in records] == [0, 1, 2]
    _put(admin, bucket_name, key, b"changed")
    with pytest.raises(ObjectChanged):
        bucket.spool_object(listed.ref, tmp_path)
    assert list(tmp_path.iterdir()) == [path]  # the failed spool left nothing behind
