"""Continuous files mode with S3 event notifications from moto's SQS (same server as S3):
new objects are found within seconds although the listing runs once an hour."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import boto3
import pytest

from tests.integration.files import test_files_run as base
from tests.integration.files.test_files_run import PREFIX, WORKTREE, FilesLab, wait_for
from tests.unit.files.helpers import RECORDS, csv_file, jsonl_file

pytestmark = pytest.mark.integration

_queues = iter(range(10**6))
lab = base.lab  # the fixture: a fresh target database and bucket


def s3_event(bucket: str, key: str) -> str:
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key.replace(" ", "+")}},
    }
    return json.dumps({"Records": [record]})


@pytest.fixture
def sqs(s3_endpoint: str) -> Any:
    return boto3.client("sqs", endpoint_url=s3_endpoint)


def in_queue(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def start(lab: FilesLab, queue_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "streamer", "run", "--mode", "files", "--poll-interval", "3600"],
        env=lab.env(STREAMER_FILES_SQS_URL=queue_url),
        cwd=WORKTREE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_notifications_trigger_a_cycle_within_seconds(lab: FilesLab, sqs: Any) -> None:
    url = sqs.create_queue(QueueName=f"lake-events-{next(_queues)}")["QueueUrl"]
    lab.put("2024-12-13/a.jsonl", jsonl_file(RECORDS[:2]))
    proc = start(lab, url)
    try:
        assert wait_for(lambda: lab.status().get("2024-12-13/a.jsonl") == "completed")
        # hostile messages first: none of them may stop the run
        for body in ("not json", "[" * 50_000, json.dumps({"Event": "s3:TestEvent"})):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        sqs.send_message(QueueUrl=url, MessageBody=s3_event(lab.bucket, "elsewhere/x.jsonl"))
        lab.put("2024-12-14/b c.csv", csv_file(RECORDS[2:], data_column=True))
        # a late object in a partition older than the lookback: only the notification
        # can find it before a full re-list
        lab.put("2024-11-01/late.jsonl", jsonl_file(RECORDS[:1]))
        sent = time.monotonic()
        for key in ("2024-12-14/b c.csv", "2024-11-01/late.jsonl"):
            sqs.send_message(QueueUrl=url, MessageBody=s3_event(lab.bucket, PREFIX + key))
        assert wait_for(
            lambda: (
                lab.status().get("2024-12-14/b c.csv") == "completed"
                and lab.status().get("2024-11-01/late.jsonl") == "completed"
            ),
            timeout=20,
        )
        took = time.monotonic() - sent
        print(f"notified objects committed {took:.2f} s after the messages")
        assert took < 15, took
        assert wait_for(lambda: in_queue(sqs, url) == 0)  # deleted once committed
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=40)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "[[[" not in stderr  # message bodies are never logged


def test_a_missing_queue_stops_with_the_iam_hint(lab: FilesLab, s3_endpoint: str) -> None:
    proc = start(lab, f"{s3_endpoint}/123456789012/no-such-queue")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    assert "no-such-queue" in stderr and "sqs:ReceiveMessage" in stderr
    assert "Traceback" not in stderr
