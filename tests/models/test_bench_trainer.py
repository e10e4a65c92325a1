"""``streamer bench trainer`` on the real image model, small: digits drawn as photos and
embedded, one class, a few rounds; the figures it promises are there and make sense."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from streamer.bench.trainer import digit_photos, scores
from streamer.cli.bench import bench


def test_digits_are_drawn_as_photos_of_their_class() -> None:
    photos, classes = digit_photos()
    assert len(photos) == len(classes) == 1797
    assert sorted(set(classes.tolist())) == list(range(10))
    photo = Image.open(io.BytesIO(photos[0]))
    assert (photo.size, photo.mode) == ((224, 224), "RGB")
    pixels = np.asarray(photo)
    assert pixels.max() == 255 and pixels.min() < 64  # black strokes on white


def test_scores_count_precision_recall_and_f1() -> None:
    predicted = np.array([True, True, False, False, True])
    truth = np.array([True, False, True, False, True])
    assert scores(predicted, truth) == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3}
    )
    assert scores(np.zeros(3, bool), np.ones(3, bool))["f1"] == 0.0


def test_the_bench_reports_the_trainer_against_random_sampling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMER_STACK_STATE_DIR", str(tmp_path))
    args = ["trainer", "--photos", "400", "--classes", "0,3", "--rounds", "3", "--k", "8", "--json"]
    done = CliRunner().invoke(bench, args)
    assert done.exit_code == 0, done.output
    figures = json.loads(done.stdout.splitlines()[-1])
    assert (figures["trainer_classes"], figures["trainer_rounds"]) == (2, 3)
    assert figures["trainer_held_out"] == 120
    assert [r["labels"] for r in figures["per_round"]] == [8, 16, 24]
    for key in ("positives_over_random", "f1", "precision", "recall", "random_f1"):
        assert key in figures and figures[key] is not None, key
    assert 0.0 <= figures["f1"] <= 1.0
    # the trainer's first labels come from the top of the query's ranking: mostly its class,
    # far more than one in ten at random (a measured ~0.8 against ~0.1)
    assert figures["per_round"][0]["positives_per_label"] > 0.3
    assert figures["positives_over_random"] > 1.0


def test_bad_classes_are_refused() -> None:
    done = CliRunner().invoke(bench, ["trainer", "--classes", "3,12"])
    assert done.exit_code == 2 and "digits 0 to 9" in done.output
