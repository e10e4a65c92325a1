"""Fetch the bytes behind a media URI, refusing anything outside what the worker may read.

``file://`` URIs must resolve, after following every symlink, to a regular file under one of the
configured media roots. Other schemes are refused with a typed error until their guarded
fetchers exist.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from operators.http_fetch import HttpFetcher
from operators.s3_fetch import S3Fetcher
from streamer.errors import FetchError

__all__ = ["Fetcher", "FileFetcher", "path_to_uri"]


def path_to_uri(path: Path) -> str:
    """The ``file://`` URI of a local path (absolute, symlinks kept as given)."""
    return path.absolute().as_uri()


RACY_S = 2.0


class FileFetcher:
    """Reads ``file://`` URIs confined to ``media_roots``, at most ``max_bytes`` each."""

    def __init__(self, media_roots: Sequence[Path], *, max_bytes: int) -> None:
        if not media_roots:
            raise ValueError("FileFetcher needs at least one media root")
        self.media_roots = tuple(Path(r).resolve() for r in media_roots)
        self.max_bytes = max_bytes

    def resolve(self, uri: str) -> Path:
        """The real path behind ``uri``, or :class:`FetchError` if it is not allowed."""
        parts = urlsplit(uri)
        if parts.scheme.lower() != "file":
            raise FetchError(f"not a file:// URI: {uri!r}")
        if parts.netloc not in ("", "localhost"):
            raise FetchError(f"file:// URI names a remote host {parts.netloc!r}")
        raw_path = unquote(parts.path)
        if "\x00" in raw_path or not raw_path.startswith("/"):
            raise FetchError(f"file:// path must be absolute and clean: {uri!r}")
        try:
            real = Path(os.path.realpath(raw_path, strict=True))
        except OSError as exc:
            raise FetchError(f"cannot read {raw_path!r}: {exc.strerror or exc}") from exc
        if not any(real.is_relative_to(root) for root in self.media_roots):
            roots = ", ".join(str(r) for r in self.media_roots)
            raise FetchError(f"{raw_path!r} is outside the media roots ({roots})")
        return real

    def validator(self, uri: str) -> str | None:
        """A cheap token that changes when the file does (size, mtime in ns, inode), read
        without opening it; None if the file cannot be checked (the fetch will say why).

        A file modified in the last ``RACY_S`` seconds gets none: file-system timestamps are
        coarser than nanoseconds, so a rewrite within the same tick could keep the token (git's
        "racy" files). Such files are read and hashed every time until they settle.
        """
        try:
            info = os.stat(self.resolve(uri), follow_symlinks=False)
        except (OSError, FetchError):
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        if time.time_ns() - info.st_mtime_ns < RACY_S * 1e9:
            return None
        return f"file:{info.st_size}:{info.st_mtime_ns}:{info.st_ino}"

    def fetch(self, uri: str) -> bytes:
        path = self.resolve(uri)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise FetchError(f"cannot open {str(path)!r}: {exc.strerror or exc}") from exc
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise FetchError(f"{str(path)!r} is not a regular file")
        with os.fdopen(fd, "rb") as handle:
            if info.st_size > self.max_bytes:
                raise FetchError(f"{str(path)!r} is {info.st_size} bytes, over {self.max_bytes}")
            data = handle.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise FetchError(f"{str(path)!r} grew past {self.max_bytes} bytes while read")
        return data


class Fetcher:
    """Dispatches a URI to the fetcher of its scheme; unknown schemes are refused."""

    def __init__(
        self, file: FileFetcher, http: HttpFetcher | None = None, s3: S3Fetcher | None = None
    ) -> None:
        self.file = file
        self.http = http
        self.s3 = s3

    def validator(self, uri: str) -> str | None:
        """A token that changes whenever the content at ``uri`` does, when one is cheap to
        get without reading the content (local files); else None."""
        if urlsplit(uri).scheme.lower() == "file":
            return self.file.validator(uri)
        return None

    def fetch(self, uri: str) -> bytes:
        scheme = urlsplit(uri).scheme.lower()
        if scheme == "file":
            return self.file.fetch(uri)
        if scheme in ("http", "https") and self.http is not None:
            return self.http.fetch(uri)
        if scheme == "s3" and self.s3 is not None:
            return self.s3.fetch(uri)
        raise FetchError(f"scheme {scheme or '(none)'!r} is not enabled on this worker: {uri!r}")
