"""The end-to-end phases' workers: one gets the settings as they are; several split the fetch
threads and the torch threads of the machine between them."""

from __future__ import annotations

from streamer.bench.ingest import worker_env, worker_log
from streamer.config.settings import BatchingSettings, RuntimeSettings, Settings, settings_env


def settings(decode_workers: int, torch_threads: int) -> Settings:
    return Settings(
        batching=BatchingSettings(decode_workers=decode_workers),
        runtime=RuntimeSettings(device="cpu", torch_threads=torch_threads),
    )


def test_one_worker_runs_with_the_settings_as_they_are() -> None:
    s = settings(16, 8)
    assert worker_env(s, 1) == settings_env(s)


def test_several_workers_split_the_threads_between_them() -> None:
    env = worker_env(settings(16, 8), 4)
    assert env["STREAMER_BATCH_DECODE_WORKERS"] == "4"
    assert env["STREAMER_TORCH_THREADS"] == "2"
    few = worker_env(settings(2, 1), 4)  # never below one of each
    assert few["STREAMER_BATCH_DECODE_WORKERS"] == "1" and few["STREAMER_TORCH_THREADS"] == "1"


def test_each_worker_has_its_own_log() -> None:
    assert len({worker_log(i) for i in range(4)}) == 4
    assert worker_log(0) == "bench-ingest-worker.log"  # where the GPU check looks
