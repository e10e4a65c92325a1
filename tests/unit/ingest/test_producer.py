from pathlib import Path

import pytest

from streamer.core.digests import asset_id_for
from streamer.core.errors import StreamerError
from streamer.ingest.producer import expand_sources, text_upload


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.jpg").write_bytes(b"1")
    (tmp_path / "a" / "two.PNG").write_bytes(b"2")
    (tmp_path / "a" / "notes.txt").write_text("n")
    (tmp_path / "a" / "skip.bin").write_bytes(b"x")
    (tmp_path / "b.jpeg").write_bytes(b"3")
    return tmp_path


def test_folders_files_globs_and_uris(tree: Path) -> None:
    uploads = expand_sources(
        [str(tree / "a"), str(tree / "b.jpeg"), str(tree / "*.jpeg"), "https://cdn.test/x.webp"],
        metadata={"tenant": "acme"},
    )
    uris = [u.uri for u in uploads]
    assert len(uris) == len(set(uris)) == 5  # the glob repeats b.jpeg; skip.bin is no media
    assert {u.media_type for u in uploads} == {"image", "text"}
    assert all(u.metadata == {"tenant": "acme"} for u in uploads)
    assert uris[-1] == "https://cdn.test/x.webp"


def test_ids_are_stable_and_readable(tree: Path) -> None:
    first = expand_sources([str(tree / "b.jpeg")])[0]
    assert first.id == expand_sources([str(tree / "b.jpeg")])[0].id
    assert first.id.startswith("b.jpeg-")
    assert asset_id_for("file:///x/b.jpeg") != asset_id_for("file:///y/b.jpeg")


def test_nothing_matches(tree: Path) -> None:
    with pytest.raises(StreamerError, match="no file, folder or glob"):
        expand_sources([str(tree / "nope*.jpg")])
    with pytest.raises(StreamerError, match="cannot publish"):
        expand_sources([str(tree / "a" / "skip.bin")])


def test_inline_text() -> None:
    upload = text_upload("hello", metadata={"k": "v"})
    assert upload.media_type == "text"
    assert upload.id == text_upload("hello").id
