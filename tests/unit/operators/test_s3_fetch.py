"""The s3:// fetcher through the real boto3 client, against a local S3-compatible server."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from operators.s3_fetch import S3Fetcher
from streamer.core.errors import FetchError
from streamer.stack.processes import free_port


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    s3 = boto3.client("s3", endpoint_url=url)
    s3.create_bucket(Bucket="media")
    s3.put_object(Bucket="media", Key="cats/tom.jpg", Body=b"JPEG" * 10)
    s3.put_object(Bucket="media", Key="big.bin", Body=b"x" * 5000)
    yield url
    server.stop()


def test_fetches_an_object(endpoint: str) -> None:
    fetcher = S3Fetcher(max_bytes=1000, endpoint_url=endpoint)
    assert fetcher.fetch("s3://media/cats/tom.jpg") == b"JPEG" * 10


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("s3://media/missing.jpg", "cannot fetch"),
        ("s3://media/big.bin", "over 1000"),
        ("s3://other/cats/tom.jpg", "not on the allow list"),
        ("s3://media/", "not an s3://bucket/key"),
    ],
)
def test_refusals(endpoint: str, uri: str, reason: str) -> None:
    fetcher = S3Fetcher(max_bytes=1000, endpoint_url=endpoint, allow_buckets=["media"])
    with pytest.raises(FetchError, match=reason):
        fetcher.fetch(uri)
