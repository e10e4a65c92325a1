import os
import time
from pathlib import Path

import pytest

from operators.fetch import Fetcher, FileFetcher, path_to_uri
from streamer.core.errors import FetchError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    media = tmp_path / "media"
    media.mkdir()
    (media / "ok.jpg").write_bytes(b"x" * 10)
    (tmp_path / "secret.txt").write_text("top secret")
    return media


def test_reads_a_file_under_the_root(root: Path) -> None:
    fetcher = FileFetcher([root], max_bytes=100)
    assert fetcher.fetch(path_to_uri(root / "ok.jpg")) == b"x" * 10


@pytest.mark.parametrize(
    "suffix",
    ["/../secret.txt", "/%2e%2e/secret.txt", "/sub/../../secret.txt"],
)
def test_traversal_is_refused(root: Path, suffix: str) -> None:
    (root / "sub").mkdir()
    fetcher = FileFetcher([root], max_bytes=100)
    with pytest.raises(FetchError, match="outside the media roots"):
        fetcher.fetch(f"file://{root}{suffix}")


def test_symlink_that_escapes_is_refused(root: Path) -> None:
    os.symlink(root.parent / "secret.txt", root / "link.jpg")
    with pytest.raises(FetchError, match="outside the media roots"):
        FileFetcher([root], max_bytes=100).fetch(path_to_uri(root / "link.jpg"))


def test_symlink_inside_the_root_is_followed(root: Path) -> None:
    os.symlink(root / "ok.jpg", root / "alias.jpg")
    assert FileFetcher([root], max_bytes=100).fetch(path_to_uri(root / "alias.jpg")) == b"x" * 10


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("file://evil.test/etc/passwd", "remote host"),
        ("file:relative/path.jpg", "absolute"),
        ("file:///nonexistent/x.jpg", "cannot read"),
    ],
)
def test_bad_file_uris(root: Path, uri: str, reason: str) -> None:
    with pytest.raises(FetchError, match=reason):
        FileFetcher([root], max_bytes=100).fetch(uri)


def test_size_cap(root: Path) -> None:
    with pytest.raises(FetchError, match="over 5"):
        FileFetcher([root], max_bytes=5).fetch(path_to_uri(root / "ok.jpg"))


def test_directories_are_not_files(root: Path) -> None:
    (root / "dir.jpg").mkdir()
    with pytest.raises(FetchError, match="not a regular file"):
        FileFetcher([root], max_bytes=100).fetch(path_to_uri(root / "dir.jpg"))


@pytest.mark.parametrize("uri", ["http://127.0.0.1/a.jpg", "s3://bucket/a.jpg", "ftp://x/a.jpg"])
def test_other_schemes_are_refused(root: Path, uri: str) -> None:
    with pytest.raises(FetchError, match="not enabled"):
        Fetcher(FileFetcher([root], max_bytes=100)).fetch(uri)


def test_a_fifo_is_refused_without_blocking(root: Path) -> None:
    os.mkfifo(root / "pipe.jpg")  # opening it for reading would wait for a writer
    fetcher = FileFetcher([root], max_bytes=100)
    with pytest.raises(FetchError, match="not a regular file"):
        fetcher.fetch(path_to_uri(root / "pipe.jpg"))
    assert fetcher.validator(path_to_uri(root / "pipe.jpg")) is None


def test_the_validator_names_the_file_it_checked(root: Path) -> None:
    fetcher = FileFetcher([root], max_bytes=100)
    target = root / "ok.jpg"
    past = time.time() - 60
    os.utime(target, (past, past))
    info = target.stat()
    token = fetcher.validator(path_to_uri(target))
    assert token == f"file:{info.st_size}:{info.st_mtime_ns}:{info.st_ino}"
    os.symlink(target, root / "alias.jpg")  # the same file by another name: the same token
    assert fetcher.validator(path_to_uri(root / "alias.jpg")) == token
    os.symlink(root.parent / "secret.txt", root / "out.jpg")
    assert fetcher.validator(path_to_uri(root / "out.jpg")) is None
    os.utime(target)  # just modified: racy, no token until it settles
    assert fetcher.validator(path_to_uri(target)) is None


def test_without_proc_the_realpath_fallback_confines_too(root: Path) -> None:
    fetcher = FileFetcher([root], max_bytes=100)
    fetcher._by_proc = False  # as on a system without O_PATH and /proc
    assert fetcher.fetch(path_to_uri(root / "ok.jpg")) == b"x" * 10
    os.symlink(root.parent / "secret.txt", root / "link.jpg")
    with pytest.raises(FetchError, match="outside the media roots"):
        fetcher.fetch(path_to_uri(root / "link.jpg"))
    os.mkfifo(root / "pipe.jpg")
    with pytest.raises(FetchError, match="not a regular file"):
        fetcher.fetch(path_to_uri(root / "pipe.jpg"))
