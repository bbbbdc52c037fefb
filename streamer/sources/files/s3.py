"""The bucket: URL parsing, listing with partition resume, streaming and spooling reads.

The only module that imports boto3 (`make_client` also makes the SQS client of
`notifications`), and only when a client is made, so `streamer` imports without the
`files` extra. streamer only lists and reads (ListObjectsV2 and
GetObject): the seed's List/Get IAM policy is enough, nothing is ever written or deleted.

Credentials, region and endpoint come from boto3's standard chain (environment,
profiles, instance roles; `AWS_ENDPOINT_URL` is honoured by boto3 >= 1.28 itself).
botocore retries with its "standard" mode; what is left after the retries is translated
into the error tree in one place, `translate_errors`.

Partition resume: the seed's keys are `<prefix><YYYY-MM-DD>/<file>`. Listing from
`start_after(prefix, newest_completed_partition, lookback_days)` reads only the last
`lookback_days` + 1 partitions, so a cycle's cost does not grow with completed files. An
object added late to an older partition is only seen by a full listing (`full=True`).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Final

from streamer.errors import ConfigError, StreamerError
from streamer.sources.files.errors import (
    BucketAccessDenied,
    BucketNotFound,
    BucketUnavailable,
    ObjectChanged,
)
from streamer.sources.files.rows import ObjectRef

EXTRA_HINT: Final = "--mode files needs the files extra: pip install 'streamer[files]'"
URL_HINT: Final = "give the bucket and prefix as s3://bucket/prefix/"
SPOOL_CHUNK: Final = 1024 * 1024
_ACCESS_CODES: Final = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "AllAccessDisabled",
    }
)
_RETRY_CODES: Final = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
    }
)


def parse_files_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://bucket/prefix/`; the prefix may be empty."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "s3":
        raise ConfigError(
            f"--files-url must start with s3://, got {scheme + sep or 'no scheme'}", URL_HINT
        )
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ConfigError("--files-url has no bucket", URL_HINT)
    return bucket, prefix


def partition_of(key: str, prefix: str) -> str | None:
    """The `<prefix><YYYY-MM-DD>/` partition holding `key`, or None if not a dated key."""
    if not key.startswith(prefix):
        return None
    segment, slash, _ = key[len(prefix) :].partition("/")
    return f"{prefix}{segment}/" if slash and _date(segment) is not None else None


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None


def start_after(
    prefix: str, newest_partition: str | None, lookback_days: int, *, full: bool = False
) -> str | None:
    """The ListObjectsV2 StartAfter key for one cycle; None lists the whole prefix.

    With the newest completed partition `<prefix>2024-12-13/` and a lookback of 2, the
    listing starts at `<prefix>2024-12-11` (exclusive), so it returns the keys of the
    2024-12-11, -12, -13 partitions and later ones (and any undated key sorting after).
    Without a completed partition, or for an undated one, everything is listed.
    """
    if lookback_days < 0:
        raise ValueError("lookback_days must be >= 0")
    if full or newest_partition is None or not newest_partition.startswith(prefix):
        return None
    day = _date(newest_partition[len(prefix) :].rstrip("/"))
    if day is None:
        return None
    return f"{prefix}{(day - timedelta(days=lookback_days)).isoformat()}"


@dataclass(frozen=True, slots=True)
class ListedObject:
    """An object as listed: its version and when it was last modified."""

    ref: ObjectRef
    last_modified: datetime


@dataclass(frozen=True, slots=True)
class Service:
    """What one AWS service's failures become in the error tree."""

    name: str  # "S3", "SQS": for messages
    unavailable: type[StreamerError]
    denied: type[StreamerError]
    not_found: type[StreamerError]
    not_found_codes: frozenset[str]


S3: Final = Service(
    "S3", BucketUnavailable, BucketAccessDenied, BucketNotFound, frozenset({"NoSuchBucket"})
)


def make_client(
    service: str = "s3",
    *,
    connect_timeout: float = 10,
    read_timeout: float = 60,
    max_attempts: int = 5,
) -> Any:
    """An `s3` (or `sqs`) client from the standard AWS chain with retries and timeouts."""
    try:
        import boto3  # noqa: PLC0415 - optional dependency
        from botocore.config import Config  # noqa: PLC0415
    except ImportError:
        raise ConfigError(EXTRA_HINT) from None
    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    with translate_errors("", f"creating the {service.upper()} client"):
        return boto3.session.Session().client(service, config=config)


@contextlib.contextmanager
def translate_errors(bucket: str, doing: str, service: Service = S3) -> Iterator[None]:
    """botocore errors to the error tree; the one place that knows botocore's errors.
    `bucket` names the bucket (or the queue, for SQS) in messages."""
    from botocore import exceptions as bx  # noqa: PLC0415 - optional dependency

    kind = "bucket" if service is S3 else "queue"
    where = f"{doing} ({kind} {bucket})" if bucket else doing
    try:
        yield
    except (bx.NoCredentialsError, bx.PartialCredentialsError) as exc:
        raise service.denied(f"no usable AWS credentials while {where}") from exc
    except bx.ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in service.not_found_codes:
            raise service.not_found(f"{kind} {bucket} does not exist ({doing})") from exc
        if code in _RETRY_CODES:  # before 403: SQS throttles with a 403
            raise service.unavailable(f"{service.name} error while {where}: {code}") from exc
        if code in _ACCESS_CODES or status == 403:
            raise service.denied(f"access denied while {where}: {code}") from exc
        if service is S3 and (code in ("PreconditionFailed", "NoSuchKey") or status == 412):
            raise ObjectChanged(f"{where}: {code or status}") from exc
        if status >= 500:
            raise service.unavailable(
                f"{service.name} error while {where}: {code or status}"
            ) from exc
        raise StreamerError(f"{service.name} error while {where}: {code or status}") from exc
    except (bx.ConnectionError, bx.HTTPClientError, bx.ResponseStreamingError) as exc:
        raise service.unavailable(
            f"cannot reach {service.name} while {where}: {type(exc).__name__}"
        ) from exc
    except bx.IncompleteReadError as exc:
        raise service.unavailable(f"connection lost while {where}") from exc


class _Body(io.RawIOBase):
    """A GetObject body whose read errors are translated like every other S3 error."""

    def __init__(self, body: Any, bucket: str, key: str) -> None:
        self._body = body
        self._doing = f"reading {key}"
        self._bucket = bucket

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with translate_errors(self._bucket, self._doing):
            data: bytes = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._body.close()
        super().close()


class Bucket:
    """Read-only access to one bucket through one client (thread-safe, like boto3's)."""

    def __init__(self, name: str, client: Any | None = None) -> None:
        self.name = name
        self.client = client if client is not None else make_client()

    def list_objects(
        self, prefix: str, start_after_key: str | None = None, *, page_size: int = 1000
    ) -> Iterator[ListedObject]:
        """Every object under `prefix` (after `start_after_key`), in key order, page by page."""
        params: dict[str, Any] = {"Bucket": self.name, "Prefix": prefix}
        if start_after_key:
            params["StartAfter"] = start_after_key
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(**params, PaginationConfig={"PageSize": page_size})
        with translate_errors(self.name, f"listing {prefix or '/'}"):
            for page in pages:
                for item in page.get("Contents", ()):
                    ref = ObjectRef(self.name, item["Key"], item["ETag"].strip('"'), item["Size"])
                    yield ListedObject(ref, item["LastModified"])

    def list_keys(self, keys: list[str]) -> Iterator[ListedObject]:
        """These exact keys, when they exist: one single-key listing each (List, not Head,
        so the List/Get policy stays enough); the key itself sorts first under its prefix."""
        for key in keys:
            first = next(iter(self.list_objects(key, page_size=1)), None)
            if first is not None and first.ref.key == key:
                yield first

    def open_object(self, ref: ObjectRef) -> BinaryIO:
        """A buffered stream of this version of the object (IfMatch: a replaced object
        raises `ObjectChanged` instead of being read as the listed version)."""
        with translate_errors(self.name, f"opening {ref.key}"):
            response = self.client.get_object(
                Bucket=ref.bucket, Key=ref.key, IfMatch=f'"{ref.etag}"'
            )
        return io.BufferedReader(_Body(response["Body"], ref.bucket, ref.key), SPOOL_CHUNK)

    def spool_object(self, ref: ObjectRef, directory: str | os.PathLike[str]) -> Path:
        """Copy the object to a temporary file in `directory` (Parquet needs to seek);
        the caller deletes it. Streamed in `SPOOL_CHUNK` pieces; removed on failure."""
        handle, name = tempfile.mkstemp(suffix=".spool", dir=directory)
        path = Path(name)
        try:
            with os.fdopen(handle, "wb") as out, self.open_object(ref) as body:
                while chunk := body.read(SPOOL_CHUNK):
                    out.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path
