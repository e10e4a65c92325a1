"""A worker's models are calibrated when they load, and the result is cached for the next."""

from pathlib import Path

from streamer.config.settings import load_settings
from streamer.models.calibration import CalibrationCache, fingerprint, stage_label
from streamer.models.loading import load_plans
from topologies import TEXT


def test_loading_calibrates_and_caches(tmp_path: Path) -> None:
    cache_path = tmp_path / "calibration.json"
    env = {
        "STREAMER_DEVICE": "cpu",
        "STREAMER_BATCH_CALIBRATE": "cached",
        "STREAMER_BATCH_CALIBRATION_SIZES": "2,1",
        "STREAMER_BATCH_CALIBRATION_CACHE": str(cache_path),
    }
    settings = load_settings(env, use_stack=False)
    plans = load_plans(settings, [TEXT])
    plan = plans.get(TEXT)
    stage = plan.models[0]
    size = plans.calibrated(plan, stage)
    assert size in (1, 2) and plans.batch_size(plan, stage) == size
    streams = settings.runtime.streams_for("cpu")
    key = fingerprint(stage_label(plan, stage), stage.bound.model, streams)  # type: ignore[union-attr]
    entry = CalibrationCache(cache_path).get(key)
    assert entry is not None and entry.batch_size == size and set(entry.items_per_s) == {1, 2}


def test_a_pinned_batch_size_skips_calibration(tmp_path: Path) -> None:
    env = {
        "STREAMER_DEVICE": "cpu",
        "STREAMER_BATCH_MAX_BATCH_SIZE": "5",
        "STREAMER_BATCH_CALIBRATION_CACHE": str(tmp_path / "calibration.json"),
    }
    plans = load_plans(load_settings(env, use_stack=False), [TEXT])
    plan = plans.get(TEXT)
    assert plans.calibrated(plan, plan.models[0]) is None
    assert plans.batch_size(plan, plan.models[0]) == 5
    assert not (tmp_path / "calibration.json").exists()
