"""SQS notifications: hostile bodies, the error translation, the poller's hand-off."""

from __future__ import annotations

import json
import select
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import given
from hypothesis import strategies as st

from streamer.errors import StreamerError
from streamer.runtime.metrics import Metrics
from streamer.sources.files.errors import QueueAccessDenied, QueueNotFound, QueueUnavailable
from streamer.sources.files.notifications import (
    IGNORED,
    MALFORMED,
    RELEVANT,
    SQS,
    Notifications,
    parse_body,
)
from streamer.sources.files.s3 import translate_errors

BUCKET, PREFIX = "lake", "raw-payments/"


def event(key: str, name: str = "ObjectCreated:Put", bucket: str = BUCKET) -> str:
    record = {"eventName": name, "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}
    return json.dumps({"Records": [record]})


@pytest.mark.parametrize(
    ("body", "outcome", "keys"),
    [
        (event("raw-payments/2024-12-13/a.jsonl"), RELEVANT, ["raw-payments/2024-12-13/a.jsonl"]),
        (event("raw-payments/a+b%C3%A9.csv"), RELEVANT, ["raw-payments/a bé.csv"]),
        (event("other/a.jsonl"), IGNORED, []),
        (event("raw-payments/a.jsonl", bucket="elsewhere"), IGNORED, []),
        (event("raw-payments/a.jsonl", name="ObjectRemoved:Delete"), IGNORED, []),
        (json.dumps({"Event": "s3:TestEvent", "Bucket": BUCKET}), IGNORED, []),
        (
            json.dumps({"Type": "Notification", "Message": event("raw-payments/x.json")}),
            RELEVANT,
            ["raw-payments/x.json"],
        ),
        ("not json", MALFORMED, []),
        ("[1, 2]", MALFORMED, []),
        ('{"Records": "no"}', MALFORMED, []),
        ('{"Records": [1, null, {"eventName": 3}]}', IGNORED, []),
        ("[" * 100_000 + "]" * 100_000, MALFORMED, []),  # nesting bomb
        (" " * 300_000 + "{}", MALFORMED, []),  # larger than SQS allows
        (None, MALFORMED, []),
        (event("raw-payments/" + "k" * 2000), IGNORED, []),  # longer than S3 allows
        (json.dumps({"Records": [json.loads(event("raw-payments/a"))] * 101}), MALFORMED, []),
    ],
)
def test_parse_body(body: Any, outcome: str, keys: list[str]) -> None:
    assert parse_body(body, BUCKET, PREFIX) == (outcome, keys)


@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_parse_body_never_raises(body: str) -> None:
    outcome, keys = parse_body(body, BUCKET, PREFIX)
    assert outcome in (RELEVANT, IGNORED, MALFORMED)
    assert all(key.startswith(PREFIX) for key in keys)


def _client_error(code: str, status: int) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "ReceiveMessage")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "expected", "retryable"),
    [
        (_client_error("AWS.SimpleQueueService.NonExistentQueue", 400), QueueNotFound, False),
        (_client_error("QueueDoesNotExist", 400), QueueNotFound, False),
        (_client_error("AccessDenied", 403), QueueAccessDenied, False),
        (_client_error("RequestThrottled", 403), QueueUnavailable, True),
        (_client_error("ServiceUnavailable", 503), QueueUnavailable, True),
        (EndpointConnectionError(endpoint_url="http://x"), QueueUnavailable, True),
    ],
)
def test_translation(error: Exception, expected: type[StreamerError], retryable: bool) -> None:
    with pytest.raises(expected) as raised, translate_errors("q", "receiving", SQS):
        raise error
    assert raised.value.retryable is retryable
    if expected is not QueueUnavailable:
        assert "sqs:ReceiveMessage" in str(raised.value)
        assert "sqs:DeleteMessage" in str(raised.value)


class FakeQueue:
    """receive_message hands out the scripted batches, then blocks until closed."""

    def __init__(self, batches: list[Any]) -> None:
        self.batches = batches
        self.deleted: list[str] = []
        self.idle = threading.Event()

    def receive_message(self, **params: Any) -> Any:
        assert params["WaitTimeSeconds"] <= 20 and params["MaxNumberOfMessages"] <= 10
        if not self.batches:
            self.idle.set()
            threading.Event().wait(0.05)
            return {}
        batch = self.batches.pop(0)
        if isinstance(batch, Exception):
            raise batch
        return {"Messages": batch}

    def delete_message_batch(self, QueueUrl: str, Entries: list[Any]) -> None:  # noqa: N803
        assert len(Entries) <= 10
        self.deleted += [entry["ReceiptHandle"] for entry in Entries]


def _notifications(fake: FakeQueue) -> Notifications:
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/lake-events"
    return Notifications(url, BUCKET, PREFIX, Metrics(), client=fake)


def test_relevant_messages_wait_for_their_cycle_junk_is_deleted_at_once() -> None:
    fake = FakeQueue(
        [
            [
                {"ReceiptHandle": "good", "Body": event("raw-payments/a.jsonl")},
                {"ReceiptHandle": "junk", "Body": "{{{"},
                {"ReceiptHandle": "test", "Body": json.dumps({"Event": "s3:TestEvent"})},
                {"Body": event("raw-payments/no-handle.jsonl")},
            ]
        ]
    )
    notes = _notifications(fake)
    notes.start()
    try:
        assert select.select([notes.fileno()], [], [], 5)[0]
        assert fake.idle.wait(5)
        assert notes.pending()
        assert sorted(fake.deleted) == ["junk", "test"]
        keys, handles = notes.take()
        assert (keys, handles) == (["raw-payments/a.jsonl"], ["good"])
        assert not notes.pending()
        notes.delete(handles)
        assert "good" in fake.deleted
    finally:
        notes.close()


def test_a_denied_queue_stops_the_run_with_the_hint() -> None:
    notes = _notifications(FakeQueue([_client_error("AccessDenied", 403)]))
    notes.start()
    try:
        assert select.select([notes.fileno()], [], [], 5)[0]
        with pytest.raises(QueueAccessDenied, match="sqs:ReceiveMessage"):
            notes.pending()
    finally:
        notes.close()


def test_an_unreachable_queue_is_retried() -> None:
    fake = FakeQueue(
        [
            EndpointConnectionError(endpoint_url="http://x"),
            [{"ReceiptHandle": "h", "Body": event("raw-payments/b.csv")}],
        ]
    )
    notes = _notifications(fake)
    notes.start()
    try:
        assert fake.idle.wait(10)
        assert notes.pending()
    finally:
        notes.close()
