"""A real S3 HTTP endpoint on 127.0.0.1: moto's server, started once per session.

The client under test finds it the way production finds MinIO: through AWS_ENDPOINT_URL
and the standard credential chain (fake keys here), never through in-process patching.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    empty = tmp_path_factory.mktemp("aws") / "none"
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_ENDPOINT_URL", endpoint)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.setenv("AWS_CONFIG_FILE", str(empty))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
        yield endpoint
    server.stop()


@pytest.fixture
def admin(s3_endpoint: str) -> Any:
    """A test-only client that creates buckets and uploads (streamer never writes)."""
    return boto3.client("s3", endpoint_url=s3_endpoint)


_buckets = iter(range(10**6))


@pytest.fixture
def bucket_name(admin: Any) -> str:
    name = f"lake-{next(_buckets)}"
    admin.create_bucket(Bucket=name)
    return name
