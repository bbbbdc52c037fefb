"""S3 event notifications from SQS: discovery within seconds between listings.

A daemon thread long-polls the queue (ReceiveMessage, at most 10 messages and
`WAIT_S` seconds a call) so the driver's loop never blocks on it; it wakes the loop
through a pipe (`fileno`). A message naming an object created under the prefix makes
the source start a cycle early (`pending`). Listing every poll interval stays the
safety net: notifications can be lost, delayed or never configured.

Deletion: a relevant message is deleted only once the cycle that started after it was
received has committed every file it found (`take` at the start of the cycle, `delete`
once that cycle is durable). A crash before that leaves the message in the queue, it is
delivered again after its visibility timeout and only causes one more (idempotent)
cycle. Messages that can never matter (bad JSON, oversized bodies, test events, other
buckets or prefixes, other event types) are deleted at once so they do not come back.

Message bodies are untrusted: bounded in size, nesting and record count, never logged,
and they reach metrics only as one of the closed `NOTIFICATION_OUTCOMES`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import unquote_plus

from streamer.errors import StreamerError
from streamer.runtime.metrics import NOTIFICATION_OUTCOMES, Metrics
from streamer.sources.files.errors import QueueAccessDenied, QueueNotFound, QueueUnavailable
from streamer.sources.files.s3 import Service, make_client, translate_errors

log = logging.getLogger(__name__)

WAIT_S: Final = 20  # SQS's longest long poll
MAX_MESSAGES: Final = 10  # SQS's most messages a call
MAX_BODY_CHARS: Final = 256 * 1024  # SQS's largest message body
MAX_RECORDS: Final = 100  # S3 sends one record a message; more is not S3's
MAX_KEY_BYTES: Final = 1024  # S3's longest key
RETRY_S: Final = (1.0, 2.0, 5.0, 10.0, 30.0)
RELEVANT, IGNORED, MALFORMED = NOTIFICATION_OUTCOMES
SQS: Final = Service(
    "SQS",
    QueueUnavailable,
    QueueAccessDenied,
    QueueNotFound,
    frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}),
)


def parse_body(body: object, bucket: str, prefix: str) -> tuple[str, list[str]]:
    """(outcome, keys created under `prefix` in `bucket`) of one message body: an S3
    event, the same wrapped in an SNS notification, or S3's `s3:TestEvent`."""
    document = _json(body)
    if isinstance(document, dict) and document.get("Type") == "Notification":
        document = _json(document.get("Message"))  # SNS: the S3 event as a JSON string
    if not isinstance(document, dict):
        return MALFORMED, []
    if document.get("Event") == "s3:TestEvent":
        return IGNORED, []
    records = document.get("Records")
    if not isinstance(records, list) or len(records) > MAX_RECORDS:
        return MALFORMED, []
    keys = [key for record in records if (key := _created_key(record, bucket, prefix))]
    return (RELEVANT if keys else IGNORED), keys


def _json(text: object) -> Any:
    if not isinstance(text, str) or len(text) > MAX_BODY_CHARS:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: a nesting bomb
        return None


def _created_key(record: object, bucket: str, prefix: str) -> str | None:
    if not isinstance(record, dict):
        return None
    name, s3 = record.get("eventName"), record.get("s3")
    if not isinstance(name, str) or not name.startswith("ObjectCreated:"):
        return None
    if not isinstance(s3, dict) or not isinstance(s3.get("object"), dict):
        return None
    where = s3.get("bucket")
    if not isinstance(where, dict) or where.get("name") != bucket:
        return None
    raw = s3["object"].get("key")
    if not isinstance(raw, str) or len(raw) > 3 * MAX_KEY_BYTES:
        return None
    key = unquote_plus(raw)  # event keys are URL-encoded, spaces as '+'
    if len(key.encode("utf-8", "replace")) > MAX_KEY_BYTES or not key.startswith(prefix):
        return None
    return key


class Notifications:
    """One queue, long-polled by a daemon thread; relevant messages wait for `take`."""

    def __init__(
        self,
        queue_url: str,
        bucket: str,
        prefix: str,
        metrics: Metrics,
        *,
        client: Any | None = None,
        wait_s: int = WAIT_S,
    ) -> None:
        self.queue_url = queue_url
        self._where = queue_url.rstrip("/").rsplit("/", 1)[-1][:80]  # the name, no account
        self._bucket, self._prefix, self._metrics = bucket, prefix, metrics
        self._client = client if client is not None else make_client("sqs", read_timeout=40)
        self._wait_s = max(0, min(wait_s, WAIT_S))
        self._lock = threading.Lock()
        self._keys: list[str] = []
        self._handles: list[str] = []
        self._error: StreamerError | None = None
        self._stop = threading.Event()
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        self._thread = threading.Thread(target=self._poll, name="streamer-sqs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def fileno(self) -> int:
        """Readable when messages arrived (or the poller stopped on an error)."""
        return self._read_fd

    def pending(self) -> bool:
        """A relevant message is waiting; raises the poller's error if it stopped.
        Empties the wake-up pipe first: a later wake-up means later news."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read_fd, 4096):
                pass
        with self._lock:
            if self._error is not None:
                raise self._error
            return bool(self._handles)

    def take(self) -> tuple[list[str], list[str]]:
        """(keys, receipt handles) received so far; the caller deletes the handles once
        what it found for the keys is durable."""
        with self._lock:
            keys, handles = self._keys, self._handles
            self._keys, self._handles = [], []
        return keys, handles

    def delete(self, handles: Iterable[str]) -> None:
        """DeleteMessageBatch, 10 at a time. A retryable failure only costs a redelivery
        (one more early cycle), so it is logged; a denied delete stops the run."""
        batch = list(handles)
        for start in range(0, len(batch), MAX_MESSAGES):
            entries = [
                {"Id": str(i), "ReceiptHandle": handle}
                for i, handle in enumerate(batch[start : start + MAX_MESSAGES])
            ]
            try:
                with translate_errors(self._where, "deleting SQS messages", SQS):
                    self._client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except StreamerError as exc:
                if not exc.retryable:
                    raise
                log.warning("%s; the messages will be delivered again", exc)

    def close(self) -> None:
        """Stop polling (the thread ends after its current call, at most `WAIT_S`)."""
        self._stop.set()
        os.close(self._read_fd)  # the thread's next wake-up gets EPIPE, ignored
        if self._thread.ident is None:  # never started; else the thread closes it
            os.close(self._write_fd)

    # -- the poller thread -----------------------------------------------------------
    def _poll(self) -> None:
        try:
            self._loop()
        finally:
            os.close(self._write_fd)

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                with translate_errors(self._where, "receiving SQS messages", SQS):
                    response = self._client.receive_message(
                        QueueUrl=self.queue_url,
                        MaxNumberOfMessages=MAX_MESSAGES,
                        WaitTimeSeconds=self._wait_s,
                    )
                failures = 0
                self._receive(response.get("Messages") or [])
            except StreamerError as exc:
                if not exc.retryable:
                    with self._lock:
                        self._error = exc
                    self._wake()
                    return
                log.warning("%s; retrying", exc)
                self._stop.wait(RETRY_S[min(failures, len(RETRY_S) - 1)])
                failures += 1
            except Exception as exc:  # never let the poller die silently
                log.warning("SQS poller: %s; retrying", type(exc).__name__)
                self._stop.wait(RETRY_S[-1])

    def _receive(self, messages: list[Any]) -> None:
        useless: list[str] = []
        woke = False
        for message in messages[:MAX_MESSAGES]:
            handle = message.get("ReceiptHandle") if isinstance(message, dict) else None
            if not isinstance(handle, str):
                continue
            outcome, keys = parse_body(message.get("Body"), self._bucket, self._prefix)
            self._metrics.notifications.labels(outcome).inc()
            if outcome == MALFORMED:
                log.warning("deleting a malformed SQS message (not an S3 event notification)")
            if not keys:
                useless.append(handle)
                continue
            with self._lock:
                self._keys += keys
                self._handles.append(handle)
            woke = True
        if woke:
            self._wake()
        if useless and not self._stop.is_set():
            self.delete(useless)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # closed, or full: the loop was woken already
            os.write(self._write_fd, b"!")
