from pathlib import Path

import pytest

from streamer.config.settings import load_settings
from streamer.core.errors import ConfigError
from streamer.kafka.topics import topic_configs
from streamer.worker.app import faust_app_id, faust_datadir


def test_search_only_workers_never_join_the_ingest_group(tmp_path: Path) -> None:
    kafka = load_settings({"STREAMER_STACK_STATE_DIR": str(tmp_path)}).kafka
    assert faust_app_id(kafka, ingest=True) == "streamer"
    assert faust_app_id(kafka, ingest=False) == "streamer-query"


def test_faust_data_folder_is_created_with_its_parents(tmp_path: Path) -> None:
    settings = load_settings({"STREAMER_STACK_STATE_DIR": str(tmp_path / "a" / "b")})
    assert faust_datadir(settings) == tmp_path / "a" / "b" / "faust"
    assert (tmp_path / "a" / "b" / "faust").is_dir()


def test_an_unwritable_state_folder_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    settings = load_settings({"STREAMER_STACK_STATE_DIR": str(blocker / "state")})
    with pytest.raises(ConfigError, match="STREAMER_STACK_STATE_DIR"):
        faust_datadir(settings)


def test_created_topics_carry_min_insync_replicas(tmp_path: Path) -> None:
    kafka = load_settings(
        {
            "STREAMER_STACK_STATE_DIR": str(tmp_path),
            "STREAMER_KAFKA_REPLICATION_FACTOR": "3",
            "STREAMER_KAFKA_MIN_INSYNC_REPLICAS": "2",
        }
    ).kafka
    assert topic_configs(kafka) == {"min.insync.replicas": "2"}


def test_the_ingest_window_is_sized_from_the_calibrated_speed(tmp_path: Path) -> None:
    from streamer.runner.context import Context
    from streamer.runner.plans import Plans, Tuned
    from streamer.testing import fake_topology
    from streamer.worker.app import batch_window

    settings = load_settings({"STREAMER_STACK_STATE_DIR": str(tmp_path)})
    topology = fake_topology("t", "text", batch=4)
    measured = Plans(Context(settings.fetch, device="cpu"), tuner=lambda p, s: Tuned(16, 400.0))
    window = batch_window([topology], settings, measured)
    assert (window.take, window.in_flight) == (112, 2)  # 7 batches of 16: 280 ms at 400/s
    assert window.wait_s == 0.01
    # a search-only worker has no plans: the declared batch
    assert batch_window([topology], settings, None).take == 4
