"""Fetch ``s3://bucket/key`` media through boto3, with the same caps as http(s).

Credentials come from the standard AWS chain (environment, profile, instance role); an
``endpoint_url`` points it at an S3-compatible store (MinIO, Ceph). A bucket allow list, when
set, confines the worker to the buckets it is meant to read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from streamer.core.errors import FetchError

__all__ = ["S3Fetcher"]


class S3Fetcher:
    def __init__(
        self,
        *,
        max_bytes: int,
        timeout_s: float = 10.0,
        endpoint_url: str | None = None,
        allow_buckets: Sequence[str] = (),
        client: Any = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.allow_buckets = tuple(allow_buckets)
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                config=Config(
                    connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 2}
                ),
            )
        self.client = client

    def fetch(self, uri: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        parts = urlsplit(uri)
        bucket, key = parts.netloc, unquote(parts.path.lstrip("/"))
        if parts.scheme.lower() != "s3" or not bucket or not key:
            raise FetchError(f"not an s3://bucket/key URI: {uri!r}")
        if self.allow_buckets and bucket not in self.allow_buckets:
            raise FetchError(f"bucket {bucket!r} is not on the allow list")
        try:
            head = self.client.head_object(Bucket=bucket, Key=key)
            if int(head.get("ContentLength", 0)) > self.max_bytes:
                raise FetchError(f"{uri!r} is {head['ContentLength']} bytes, over {self.max_bytes}")
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
            data = body.read(self.max_bytes + 1)
            body.close()
        except (ClientError, BotoCoreError) as exc:
            raise FetchError(f"cannot fetch {uri!r}: {exc}") from exc
        if len(data) > self.max_bytes:
            raise FetchError(f"{uri!r} is over {self.max_bytes} bytes")
        return bytes(data)
