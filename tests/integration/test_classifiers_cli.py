"""``streamer classifiers`` against the real Redis: a classifier a training session saved is
listed, shown without its weights, exported with them, deleted, imported back, and a name is
never saved over by accident; attached to the stream, detached, and detached when deleted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamer.config.settings import settings_env
from streamer.trainer import (
    Classifier,
    ClassifierError,
    MemoryIndex,
    SavedClassifiers,
    TrainingSession,
)
from tests.integration.conftest import Scenario

pytestmark = pytest.mark.integration


def cli(scenario: Scenario, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(scenario.settings)}
    return subprocess.run(
        [sys.executable, "-m", "streamer", "classifiers", *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip


def test_saved_classifiers_through_the_command_line(scenario: Scenario, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(40, 8)).astype(np.float32)
    session = TrainingSession.from_query(vectors[0], topology="image", model_version="v@1")
    for candidate in session.next(MemoryIndex([str(i) for i in range(40)], vectors)):
        session.label(candidate.id, candidate.vector, 1.0 if int(candidate.id) % 2 else -1.0)
    session.train()
    saved = SavedClassifiers(scenario.redis, scenario.settings.redis.key_prefix)
    saved.save(session.classifier("odd-ones"))
    with pytest.raises(ClassifierError, match="saved already"):
        saved.save(session.classifier("odd-ones"))

    listed = cli(scenario, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["name"], row["topology"], row["model_version"], row["dim"]) == (
        "odd-ones", "image", "v@1", 8
    )  # fmt: skip
    assert row["labels"] == 10 and "weights" not in row
    assert "odd-ones: image (v@1), 8 weights, 10 labels" in cli(scenario, "list").stdout

    exported = tmp_path / "odd.json"
    assert cli(scenario, "export", "odd-ones", str(exported)).returncode == 0
    data = json.loads(exported.read_text())
    np.testing.assert_allclose(data["weights"], session.weights, rtol=1e-6)

    assert cli(scenario, "delete", "odd-ones").returncode == 0
    assert saved.names() == []
    gone = cli(scenario, "show", "odd-ones")
    assert gone.returncode == 2 and "no classifier named 'odd-ones'" in gone.stderr

    assert cli(scenario, "import", str(exported)).returncode == 0
    assert saved.get("odd-ones").bias == pytest.approx(session.bias)
    again = cli(scenario, "import", str(exported))
    assert again.returncode == 2 and "saved already" in again.stderr
    assert cli(scenario, "import", str(exported), "--replace").returncode == 0

    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x", "weights": "lots"}')
    refused = cli(scenario, "import", str(broken))
    assert refused.returncode == 2 and "not a saved classifier" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_attach_and_detach_through_the_command_line(scenario: Scenario) -> None:
    saved = SavedClassifiers(scenario.redis, scenario.settings.redis.key_prefix)
    weights = np.ones(4, dtype=np.float32)
    saved.save(Classifier("cats", "image", "v@1", weights, 0.0))
    saved.save(Classifier("dogs", "image", "v@1", -weights, 0.0))

    attached = cli(scenario, "attach", "cats")
    assert attached.returncode == 0, attached.stderr
    assert "label:cats=true" in attached.stdout
    assert [c.name for c in saved.attached()] == ["cats"]
    listed = {json.loads(line)["name"]: json.loads(line) for line in
              cli(scenario, "list", "--json").stdout.splitlines()}  # fmt: skip
    assert (listed["cats"]["attached"], listed["dogs"]["attached"]) == (True, False)
    assert "attached to the stream" in cli(scenario, "list").stdout

    unknown = cli(scenario, "attach", "birds")
    assert unknown.returncode == 2 and "no classifier named 'birds'" in unknown.stderr
    assert saved.attached_names() == ["cats"]

    assert cli(scenario, "detach", "cats").returncode == 0
    again = cli(scenario, "detach", "cats")
    assert again.returncode == 1 and "'cats' is not attached" in again.stderr
    assert saved.attached() == []

    # a deleted classifier is detached with it
    assert cli(scenario, "attach", "dogs").returncode == 0
    assert cli(scenario, "delete", "dogs").returncode == 0
    assert saved.attached_names() == [] and saved.attached() == []
