"""The colour topology: served only when named, run in-process like any other, no model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from streamer.cli.run import run as run_command
from streamer.config.settings import load_settings
from streamer.runner.local import run
from streamer.runner.served import load_topologies
from topologies import COLOUR, DEFAULT_TOPOLOGIES

COLOURS = {"red": (205, 35, 40), "green": (40, 160, 60), "blue": (35, 60, 200)}


def colour_photo(
    rgb: tuple[int, int, int], seed: int, size: tuple[int, int] = (320, 240)
) -> Image.Image:
    """A photo mostly of one colour: a soft light gradient and grain over it."""
    rng = np.random.default_rng(seed)
    width, height = size
    light = np.linspace(0.7, 1.1, width)[None, :, None] * rng.uniform(0.85, 1.0)
    grain = rng.normal(0, 12, (height, width, 3))
    pixels = np.clip(np.asarray(rgb) * light + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def write_colour_photos(folder: Path, per_colour: int = 3) -> dict[str, list[Path]]:
    """``per_colour`` JPEGs of each of :data:`COLOURS`, distinct in grain and size."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, list[Path]] = {}
    for c, (name, rgb) in enumerate(COLOURS.items()):
        for i in range(per_colour):
            path = folder / f"{name}-{i}.jpg"
            colour_photo(rgb, seed=10 * c + i, size=(320 + 16 * i, 240)).save(path, quality=90)
            paths.setdefault(name, []).append(path)
    return paths


def test_declared_with_two_versions_and_not_served_by_default() -> None:
    assert (COLOUR.name, COLOUR.media_type) == ("colour", "image")
    assert COLOUR.versions() == ["hsv-8x4x4@1", "hsv-16x4x4@2"]
    assert COLOUR not in DEFAULT_TOPOLOGIES
    served = load_topologies(["topologies:DEFAULT_TOPOLOGIES", "topologies:COLOUR"])
    assert served[-1] is COLOUR and served[:-1] == DEFAULT_TOPOLOGIES


@pytest.mark.parametrize(("version", "dim"), [(None, 128), ("hsv-16x4x4@2", 256)])
def test_a_local_run_finds_red_photos_nearest_a_red_one(
    tmp_path: Path, version: str | None, dim: int
) -> None:
    photos = write_colour_photos(tmp_path / "photos")
    query = tmp_path / "query.jpg"
    colour_photo((190, 25, 35), seed=99).save(query)
    settings = load_settings({}, use_stack=False)
    indexed = run(COLOUR, [tmp_path / "photos"], version=version, settings=settings)
    asked = run(COLOUR, [query], version=version, settings=settings)
    assert not indexed.errors and indexed.summary()["dim"] == dim
    names = [Path(i.source.uri or "").stem for i in indexed.ok]
    scores = indexed.vectors() @ asked.vectors()[0]
    nearest = [names[i] for i in np.argsort(-scores)[: len(photos["red"])]]
    assert sorted(nearest) == sorted(p.stem for p in photos["red"])


def test_streamer_run_on_a_folder(tmp_path: Path) -> None:
    write_colour_photos(tmp_path / "photos", per_colour=2)
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    result = CliRunner().invoke(
        run_command,
        ["--topologies", "topologies:COLOUR", "--topology", "colour", "--json",
         str(tmp_path / "photos")],
        env={"STREAMER_STACK_STATE_DIR": str(tmp_path / "no-stack")},
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # the broken photo failed, the rest did not
    *rows, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert (summary["items"], summary["ok"], summary["dims"]) == (7, 6, {"colour": 128})
    assert summary["versions"] == {"colour": "hsv-8x4x4@1"}
    broken = next(r for r in rows if "error" in r)
    assert broken["stage"] == "decode" and broken["source"].endswith("broken.jpg")
    assert all(r["norm"] == 1.0 for r in rows if "error" not in r)
