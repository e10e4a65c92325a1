"""A worker's models are calibrated when they load, and the result is cached for the next."""

from pathlib import Path

from streamer.models.calibration import CalibrationCache, fingerprint
from streamer.config.settings import load_settings
from streamer.worker.assembly import load_embedders
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
    pool = load_embedders(settings, [TEXT])
    size = pool.batch_size(TEXT)
    assert size in (1, 2)
    streams = settings.runtime.streams_for("cpu")
    entry = CalibrationCache(cache_path).get(fingerprint(pool.get(TEXT), streams))
    assert entry is not None and entry.batch_size == size and set(entry.items_per_s) == {1, 2}


def test_a_pinned_batch_size_skips_calibration(tmp_path: Path) -> None:
    env = {
        "STREAMER_DEVICE": "cpu",
        "STREAMER_BATCH_MAX_BATCH_SIZE": "5",
        "STREAMER_BATCH_CALIBRATION_CACHE": str(tmp_path / "calibration.json"),
    }
    pool = load_embedders(load_settings(env, use_stack=False), [TEXT])
    assert pool.batch_size(TEXT) is None
    assert not (tmp_path / "calibration.json").exists()
