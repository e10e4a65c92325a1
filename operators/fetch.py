"""Fetch the bytes behind a media URI, refusing anything outside what the worker may read.

:class:`Fetch` is the first stage of a topology: a :class:`~streamer.runner.operator.Source`
in, its content's bytes out. ``file://`` URIs must resolve, after following every symlink, to
a regular file under one of the configured media roots; ``http(s)://`` and ``s3://`` go
through their guarded fetchers; any other scheme is refused with a typed error.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from operators.http_fetch import HttpFetcher
from operators.s3_fetch import S3Fetcher
from streamer.config.settings import FetchSettings
from streamer.core.errors import FetchError
from streamer.runner.operator import BoundCpu, CpuOperator, Source

if TYPE_CHECKING:
    from streamer.runner.context import Context

__all__ = [
    "Fetch",
    "FetchVideo",
    "Fetcher",
    "FileFetcher",
    "context_fetcher",
    "fetcher_for",
    "path_to_uri",
]


def path_to_uri(path: Path) -> str:
    """The ``file://`` URI of a local path (absolute, symlinks kept as given)."""
    return path.absolute().as_uri()


RACY_S = 2.0

# Linux: open the path once (O_PATH resolves every symlink, reads nothing, and never blocks on
# a FIFO), learn where it really is from /proc, and stat and read that very file. Elsewhere:
# realpath, then open the resolved path.
_O_PATH: int | None = getattr(os, "O_PATH", None)
_PROC_FD = Path("/proc/self/fd")


class FileFetcher:
    """Reads ``file://`` URIs confined to ``media_roots``, at most ``max_bytes`` each.

    The confinement check and the read concern the same file: the path is opened once, its real
    location is checked against the roots, and what is stat'ed and read is that open file, so a
    directory swapped for a symlink between the check and the read cannot lead outside.
    """

    def __init__(self, media_roots: Sequence[Path], *, max_bytes: int) -> None:
        if not media_roots:
            raise ValueError("FileFetcher needs at least one media root")
        self.media_roots = tuple(Path(r).resolve() for r in media_roots)
        self.max_bytes = max_bytes
        self._by_proc = _O_PATH is not None and _PROC_FD.is_dir()

    def resolve(self, uri: str) -> Path:
        """The real path behind ``uri``, or :class:`FetchError` if it is not allowed."""
        fd, real = self._open(uri)
        os.close(fd)
        return real

    def _raw_path(self, uri: str) -> str:
        parts = urlsplit(uri)
        if parts.scheme.lower() != "file":
            raise FetchError(f"not a file:// URI: {uri!r}")
        if parts.netloc not in ("", "localhost"):
            raise FetchError(f"file:// URI names a remote host {parts.netloc!r}")
        raw_path = unquote(parts.path)
        if "\x00" in raw_path or not raw_path.startswith("/"):
            raise FetchError(f"file:// path must be absolute and clean: {uri!r}")
        return raw_path

    def _open(self, uri: str) -> tuple[int, Path]:
        """A descriptor of the file behind ``uri`` (an O_PATH one on Linux: stat only, or
        re-open) and its real path, checked against the media roots."""
        raw_path = self._raw_path(uri)
        try:
            if self._by_proc:
                assert _O_PATH is not None
                fd = os.open(raw_path, _O_PATH | os.O_CLOEXEC)
            else:
                real_path = os.path.realpath(raw_path, strict=True)
                fd = os.open(real_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            raise FetchError(f"cannot read {raw_path!r}: {exc.strerror or exc}") from exc
        try:
            real = Path(os.readlink(_PROC_FD / str(fd))) if self._by_proc else Path(real_path)
            if not any(real.is_relative_to(root) for root in self.media_roots):
                roots = ", ".join(str(r) for r in self.media_roots)
                raise FetchError(f"{raw_path!r} is outside the media roots ({roots})")
        except BaseException:
            os.close(fd)
            raise
        return fd, real

    def validator(self, uri: str) -> str | None:
        """A cheap token that changes when the file does (size, mtime in ns, inode), read
        without opening it for reading; None if the file cannot be checked (the fetch will say
        why).

        A file modified in the last ``RACY_S`` seconds gets none: file-system timestamps are
        coarser than nanoseconds, so a rewrite within the same tick could keep the token (git's
        "racy" files). Such files are read and hashed every time until they settle.
        """
        try:
            fd, _ = self._open(uri)
        except FetchError:
            return None
        try:
            info = os.fstat(fd)
        finally:
            os.close(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if time.time_ns() - info.st_mtime_ns < RACY_S * 1e9:
            return None
        return f"file:{info.st_size}:{info.st_mtime_ns}:{info.st_ino}"

    def fetch(self, uri: str) -> bytes:
        fd, path = self._open(uri)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise FetchError(f"{str(path)!r} is not a regular file")
            if info.st_size > self.max_bytes:
                raise FetchError(f"{str(path)!r} is {info.st_size} bytes, over {self.max_bytes}")
            if self._by_proc:  # the file that was checked, opened for reading
                try:
                    readable = os.open(_PROC_FD / str(fd), os.O_RDONLY | os.O_CLOEXEC)
                except OSError as exc:
                    raise FetchError(f"cannot open {str(path)!r}: {exc.strerror}") from exc
                os.close(fd)
                fd = readable
            with os.fdopen(fd, "rb", closefd=False) as handle:
                data = handle.read(self.max_bytes + 1)
        finally:
            os.close(fd)
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


def fetcher_for(fetch: FetchSettings) -> Fetcher:
    """The guarded fetcher of every enabled scheme, with the caps of ``fetch``."""
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


def context_fetcher(context: Context) -> Fetcher:
    """The one fetcher of a binding context (every Fetch stage bound in it shares it)."""
    return context.shared(_fetcher_of)


def _fetcher_of(context: Context) -> Fetcher:
    return fetcher_for(context.fetch)


class _BoundFetch:
    """Fetch bound to the process's fetcher; also tells whether a source is unchanged."""

    def __init__(self, fetcher: Fetcher) -> None:
        self.fetcher = fetcher

    def __call__(self, source: Source) -> bytes:
        if source.text is not None:
            return source.text.encode()
        assert source.uri is not None
        return self.fetcher.fetch(source.uri)

    def validator(self, source: Source) -> str | None:
        return self.fetcher.validator(source.uri) if source.uri is not None else None


class Fetch(CpuOperator[Source, bytes]):
    """The content of a source: the bytes behind its URI (``file://`` confined to the media
    roots, guarded ``http(s)://``, ``s3://``), or its inline text as UTF-8."""

    name = "fetch"
    takes = Source
    gives = bytes
    error = FetchError

    def bind(self, context: Context) -> BoundCpu[Source, bytes]:
        return BoundCpu(self, _BoundFetch(context_fetcher(context)))


def _video_fetcher_of(context: Context) -> Fetcher:
    return fetcher_for(context.fetch.model_copy(update={"max_bytes": context.video.max_bytes}))


class FetchVideo(Fetch):
    """:class:`Fetch` with the cap of videos (``STREAMER_VIDEO_MAX_BYTES``) instead of
    ``STREAMER_FETCH_MAX_BYTES``; every other guard is the same."""

    def bind(self, context: Context) -> BoundCpu[Source, bytes]:
        return BoundCpu(self, _BoundFetch(context.shared(_video_fetcher_of)))
