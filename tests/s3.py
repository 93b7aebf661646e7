"""A local S3-compatible server for artifact tests: moto in server mode on a free localhost port.

No network and no mocking of boto: the code under test talks HTTP to a real server, exactly as it
would to AWS, MinIO or Ceph. ``moto_s3`` starts one server per test session (threaded, in this
process; subprocesses of a test reach it over HTTP); ``s3_bucket`` makes a fresh bucket per test.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

REGION = "us-east-1"
KEY_ID, SECRET = "testing", "testing"  # moto accepts any credentials  # noqa: S105
PREFIX = "models"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class S3Bucket:
    """One bucket of the local server and how to reach it (settings, environment, boto3)."""

    endpoint: str
    name: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            region_name=REGION,
        )

    def storage(self, **options: Any) -> dict[str, Any]:
        """A ``STORAGES["artifacts"]`` entry for this bucket (what ``ARTIFACT_STORAGE=s3`` builds)."""
        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": self.name,
                "endpoint_url": self.endpoint,
                "region_name": REGION,
                "access_key": KEY_ID,
                "secret_key": SECRET,
                "location": PREFIX,
                "file_overwrite": True,
                "default_acl": None,
                "querystring_auth": False,
                **options,
            },
        }

    def env(self) -> dict[str, str]:
        """The environment of a process that should use this bucket (settings.py reads it)."""
        return {
            "ARTIFACT_STORAGE": "s3",
            "AWS_STORAGE_BUCKET_NAME": self.name,
            "AWS_S3_ENDPOINT_URL": self.endpoint,
            "AWS_S3_REGION_NAME": REGION,
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "ARTIFACT_S3_PREFIX": PREFIX,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def key(self, name: str) -> str:
        return f"{PREFIX}/{name}"


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """The endpoint URL of a moto S3 server on 127.0.0.1 (started once per session)."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(moto_s3) -> S3Bucket:
    bucket = S3Bucket(moto_s3, f"artifacts-{uuid.uuid4().hex[:10]}")
    bucket.client().create_bucket(Bucket=bucket.name)
    return bucket
