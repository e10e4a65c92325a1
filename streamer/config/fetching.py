"""The fetcher a worker uses, built from its settings."""

from __future__ import annotations

from operators.fetch import Fetcher, FileFetcher
from operators.http_fetch import HttpFetcher
from operators.s3_fetch import S3Fetcher
from streamer.config.settings import FetchSettings

__all__ = ["fetcher_for"]


def fetcher_for(fetch: FetchSettings) -> Fetcher:
    http = (
        HttpFetcher(
            max_bytes=fetch.max_bytes,
            timeout_s=fetch.http_timeout_s,
            max_redirects=fetch.http_max_redirects,
            allow_hosts=fetch.allow_hosts,
            deny_hosts=fetch.deny_hosts,
            allow_networks=fetch.allow_networks,
        )
        if fetch.http_enabled
        else None
    )
    s3 = (
        S3Fetcher(
            max_bytes=fetch.max_bytes,
            timeout_s=fetch.http_timeout_s,
            endpoint_url=fetch.s3_endpoint_url,
            allow_buckets=fetch.allow_buckets,
        )
        if fetch.s3_enabled
        else None
    )
    return Fetcher(FileFetcher(fetch.media_roots, max_bytes=fetch.max_bytes), http, s3)
