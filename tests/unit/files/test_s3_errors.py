"""Every S3 failure maps to one error of the tree (botocore exceptions built by hand)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from streamer.errors import StreamerError
from streamer.sources.files.errors import (
    BucketAccessDenied,
    BucketNotFound,
    BucketUnavailable,
    ObjectChanged,
)
from streamer.sources.files.s3 import translate_errors


def _client_error(code: str, status: int) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "ListObjectsV2")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "expected", "retryable"),
    [
        (_client_error("NoSuchBucket", 404), BucketNotFound, False),
        (_client_error("AccessDenied", 403), BucketAccessDenied, False),
        (_client_error("InvalidAccessKeyId", 403), BucketAccessDenied, False),
        (_client_error("PreconditionFailed", 412), ObjectChanged, False),
        (_client_error("NoSuchKey", 404), ObjectChanged, False),
        (_client_error("SlowDown", 503), BucketUnavailable, True),
        (_client_error("InternalError", 500), BucketUnavailable, True),
        (_client_error("InvalidArgument", 400), StreamerError, False),
        (EndpointConnectionError(endpoint_url="http://x"), BucketUnavailable, True),
        (NoCredentialsError(), BucketAccessDenied, False),
    ],
)
def test_translation(error: Exception, expected: type[StreamerError], retryable: bool) -> None:
    with pytest.raises(expected) as raised, translate_errors("lake", "listing raw/"):
        raise error
    assert raised.value.retryable is retryable
    assert "lake" in str(raised.value)


def test_access_denied_says_which_permissions_are_needed() -> None:
    with pytest.raises(BucketAccessDenied) as raised, translate_errors("lake", "listing"):
        raise _client_error("AccessDenied", 403)
    assert "s3:ListBucket" in str(raised.value) and "s3:GetObject" in str(raised.value)
