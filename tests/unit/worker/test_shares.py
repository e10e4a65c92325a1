"""Worker processes sharing a machine: one gets the settings as they are; several split the
fetch threads and the torch threads between them, each with a name and a metrics port of its
own."""

from __future__ import annotations

from streamer.config.settings import BatchingSettings, RuntimeSettings, Settings, settings_env
from streamer.worker.shares import process_env, shared_env


def settings(decode_workers: int, torch_threads: int, *, metrics_port: int = 0) -> Settings:
    return Settings(
        batching=BatchingSettings(decode_workers=decode_workers),
        runtime=RuntimeSettings(
            device="cpu", torch_threads=torch_threads, metrics_port=metrics_port,
            worker_processes=4,
        ),
    )  # fmt: skip


def test_one_process_runs_with_the_settings_as_they_are() -> None:
    s = settings(16, 8)
    assert shared_env(s, 1) == settings_env(s)


def test_several_processes_split_the_threads_between_them() -> None:
    env = shared_env(settings(16, 8), 4)
    assert env["STREAMER_BATCH_DECODE_WORKERS"] == "4"
    assert env["STREAMER_TORCH_THREADS"] == "2"
    few = shared_env(settings(2, 1), 4)  # never below one of each
    assert few["STREAMER_BATCH_DECODE_WORKERS"] == "1" and few["STREAMER_TORCH_THREADS"] == "1"


def test_each_process_of_a_group_has_a_name_and_a_port_of_its_own() -> None:
    s = settings(16, 8, metrics_port=9100)
    envs = [process_env(s, 4, i, group="pod-7") for i in range(4)]
    assert [e["STREAMER_WORKER_NAME"] for e in envs] == [f"pod-7-{i}" for i in range(4)]
    assert [e["STREAMER_METRICS_PORT"] for e in envs] == ["9101", "9102", "9103", "9104"]
    # a process of the group starts no group of its own
    assert {e["STREAMER_WORKER_PROCESSES"] for e in envs} == {"1"}
    assert {e["STREAMER_TORCH_THREADS"] for e in envs} == {"2"}


def test_a_group_without_metrics_gives_its_processes_none() -> None:
    env = process_env(settings(16, 8), 2, 1, group="g")
    assert env["STREAMER_METRICS_PORT"] == "0"
