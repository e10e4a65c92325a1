"""``streamer bench sink`` runs on the real stack and reports every figure it promises.

A small run: it checks the harness (sizes, JSON, clean-up), not the speed, which the benchmark
measures and prints, never a test.
"""

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from streamer.config.settings import Settings, settings_env
from streamer.storage.store import VectorStore

pytestmark = pytest.mark.integration


def run_sink_bench(stack: Settings, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "streamer", "bench", "sink", "--rows", "2000", "--dim", "64",
         "--json", *args],
        env={**os.environ, **settings_env(stack)},
        capture_output=True,
        timeout=480,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    figures: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return figures


def positive_rates(by_size: dict[str, float]) -> list[int]:
    assert all(isinstance(rate, float) and rate > 0 for rate in by_size.values()), by_size
    return sorted(int(size) for size in by_size)


def test_the_sink_bench_reports_rows_per_second_by_size(stack: Settings) -> None:
    figures = run_sink_bench(stack)
    assert isinstance(figures["sink_rows_per_s"], float) and figures["sink_rows_per_s"] > 0
    # sizes over the rows written are measured as one call of every row
    assert positive_rates(figures["sink_rows_per_s_by_size"]) == [64, 256, 1024, 2000]
    assert str(figures["sink_picked_rows"]) in figures["sink_rows_per_s_by_size"]
    assert "sink_server_rows_per_s" not in figures  # the stack's milvus-lite only
    store = VectorStore(stack.milvus)
    try:
        assert store.collections("sinkbench_") == []  # it cleans up after itself
    finally:
        store.close()


def test_the_sink_bench_measures_a_server_too(stack: Settings, milvus_server: str) -> None:
    figures = run_sink_bench(stack, "--milvus-uri", milvus_server, "--sizes", "100,1000")
    assert figures["sink_rows_per_s"] > 0 and figures["sink_server_rows_per_s"] > 0
    assert positive_rates(figures["sink_rows_per_s_by_size"]) == [100, 1000]
    assert positive_rates(figures["sink_server_rows_per_s_by_size"]) == [100, 1000]
