"""Errors of the file source and its notification queue (to be merged into `streamer.errors`).

`UnreadableFile` is a data problem, not a run problem: the caller marks the object
`failed` with its message and goes on, so it is deliberately *not* a `StreamerError`.
The bucket errors are run problems and follow the error tree: retryable when waiting can
help (network, throttling, 5xx), otherwise stopping with a hint for the operator.
Messages name the bucket, the key and the S3 error code, never credentials.
"""

from __future__ import annotations

from streamer.errors import ConnectionFailed, StreamerError

IAM_HINT = (
    "check the IAM policy (s3:ListBucket on the bucket, s3:GetObject on the prefix) "
    "and the AWS credentials (AWS_ACCESS_KEY_ID / AWS_PROFILE / instance role)"
)


class UnreadableFile(Exception):
    """The object as a whole cannot be read; `str(error)` is its `error_message`."""


class BucketUnavailable(ConnectionFailed):
    """cannot reach the S3 bucket."""

    database = "bucket"
    hint = "check AWS_ENDPOINT_URL, the network and the S3 service status"


class BucketNotFound(StreamerError):
    """the S3 bucket does not exist."""

    hint = "check the bucket name in STREAMER_FILES_URL and the region"


class BucketAccessDenied(StreamerError):
    """access to the S3 bucket was denied."""

    hint = IAM_HINT


class ObjectChanged(StreamerError):
    """the object changed or disappeared since it was listed.

    Not retryable for this version: the caller drops it and the next listing sees the
    new version (new ETag) as a new object.
    """

    hint = "it will be picked up again by the next listing"


QUEUE_IAM_HINT = (
    "check the queue URL (STREAMER_FILES_SQS_URL), the IAM policy (sqs:ReceiveMessage and "
    "sqs:DeleteMessage on the queue) and the AWS credentials"
)


class QueueUnavailable(ConnectionFailed):
    """cannot reach the SQS queue."""

    database = "queue"
    hint = "check AWS_ENDPOINT_URL, the network and the SQS service status"


class QueueNotFound(StreamerError):
    """the SQS queue does not exist."""

    hint = QUEUE_IAM_HINT


class QueueAccessDenied(StreamerError):
    """access to the SQS queue was denied."""

    hint = QUEUE_IAM_HINT
