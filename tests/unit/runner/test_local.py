"""Local runs: a topology on a folder in one process, no server; bad inputs are rows."""

from pathlib import Path

import numpy as np
import pytest

from streamer.config.settings import load_settings
from streamer.core.errors import ConfigError
from streamer.runner.local import expand_inputs, run, run_local
from streamer.runner.operator import Source
from streamer.testing import fake_topology

IMAGES = fake_topology("pictures", "image", dim=6)
TEXTS = fake_topology("notes", "text", dim=8)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    media = tmp_path / "media"
    (media / "sub").mkdir(parents=True)
    (media / "a.jpg").write_bytes(b"picture a")
    (media / "sub" / "b.png").write_bytes(b"picture b")
    (media / "broken.jpg").write_bytes(b"bad picture")
    (media / "note.txt").write_bytes(b"a note")
    (media / "ignored.bin").write_bytes(b"not media")
    return media


def test_a_folder_runs_through_the_topology_of_each_medium(folder: Path) -> None:
    settings = load_settings({}, use_stack=False)  # the folder is outside the media roots
    run = run_local([IMAGES, TEXTS], [folder], texts=["inline words"], settings=settings)
    summary = run.summary()
    assert (summary["items"], summary["ok"], summary["errors"]) == (5, 4, 1)
    assert summary["dims"] == {"pictures": 6, "notes": 8} and summary["dim"] is None
    by_source = {Path(i.source.uri).name if i.source.uri else i.source.text: i for i in run.items}
    assert set(by_source) == {"a.jpg", "b.png", "broken.jpg", "note.txt", "inline words"}
    broken = by_source["broken.jpg"]
    assert broken.error is not None and broken.error.stage == "decode"
    assert broken.row() == {
        "id": broken.id,
        "source": broken.source.uri,
        "topology": "pictures",
        "stage": "decode",
        "error": "fake decoder refuses content starting with 'bad'",
    }
    ok = by_source["a.jpg"].row(with_vector=True)
    assert (ok["dim"], ok["norm"], len(ok["vector"])) == (6, 1.0, 6)
    assert by_source["note.txt"].topology == "notes"


def test_one_topology_named(folder: Path) -> None:
    result = run(
        IMAGES, [folder / "a.jpg", folder / "sub"], settings=load_settings({}, use_stack=False)
    )
    assert [i.ok for i in result.items] == [True, True]
    assert result.vectors().shape == (2, 6)
    assert result.summary()["dim"] == 6
    again = run(IMAGES, [Source(uri=(folder / "a.jpg").as_uri())])
    assert np.array_equal(again.items[0].vector, result.items[0].vector)  # the same vector


def test_what_no_topology_takes_is_an_error_row(folder: Path) -> None:
    run = run_local([TEXTS], [folder / "a.jpg"], settings=load_settings({}, use_stack=False))
    (item,) = run.items
    assert item.topology is None and item.error is not None
    assert item.error.stage == "validate" and "no topology takes" in item.error.cause


def test_inputs_expand_in_a_stable_order(folder: Path) -> None:
    names = [Path(s.uri or "").name for s in expand_inputs([folder, folder / "a.jpg"])]
    assert names == ["a.jpg", "broken.jpg", "note.txt", "b.png"]
    assert len(expand_inputs([str(folder / "*.jpg")])) == 2
    assert len(expand_inputs([folder], suffixes=None)) == 5  # a medium of the user's: all files
    with pytest.raises(ConfigError, match="no file, folder or glob"):
        expand_inputs([folder / "nothing*.jpg"])
    with pytest.raises(ConfigError, match="unknown topology"):
        run_local([TEXTS], [], topology="audio")
