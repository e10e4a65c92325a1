"""``streamer bench`` runs end to end on the real stack and reports every figure it promises.

A small run: it checks the harness (phases, counters, JSON, chart), not the speed, which is
measured by the benchmark itself, never asserted in tests.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streamer.config.settings import Settings, settings_env

pytestmark = pytest.mark.integration

KEYS = (
    "image_e2e_ips", "image_model_ips", "image_naive_ips", "text_e2e_ips", "text_model_ips",
    "text_naive_ips", "first_ingest_ips", "redelivery_ips", "peak_rss_mb", "rss_growth_pct",
)  # fmt: skip


def run_bench(stack: Settings, tmp_path: Path, *args: str) -> dict[str, Any]:
    """``streamer bench --json`` with ``args`` on the test stack; its figures."""
    env = {
        **settings_env(stack),
        "STREAMER_BATCH_CALIBRATION_SIZES": "1,2",
        "STREAMER_BATCH_CALIBRATION_CACHE": str(tmp_path / "calibration.json"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "streamer", "bench", "--json", *args],
        env={**os.environ, **env},
        capture_output=True,
        timeout=480,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    figures: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return figures


def test_a_small_bench_reports_every_figure(stack: Settings, tmp_path: Path) -> None:
    chart = tmp_path / "bench.png"
    figures = run_bench(
        stack, tmp_path, "--chart", str(chart), "--images", "8", "--texts", "64",
        "--naive-images", "4", "--naive-texts", "16", "--redelivery-rounds", "2",
        "--memory-items", "200", "--mixed-texts", "24",
    )  # fmt: skip
    for key in (*KEYS, "text_mixed_arrival_ips", "text_mixed_by_length_ips"):
        assert isinstance(figures[key], (int, float)), key
    for key in KEYS[:8]:
        assert figures[key] > 0, key
    assert figures["redelivery_embedded"] == 0  # re-delivered items never reached a model
    assert figures["dead_lettered"] == 0
    assert figures["text_mixed_tokens_max"] > figures["text_mixed_tokens_median"] > 0
    assert figures["image_batch_size"] in (1, 2) and figures["text_batch_size"] in (1, 2)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for medium in ("image", "text"):  # where the worker's time went, from its own metrics
        where = figures[f"{medium}_e2e_where"]
        assert {"fetch", "embed", "sink"} <= set(where["stages"]), where
        assert where["stages"]["embed"]["busy_s"] > 0  # the model's thread time, waits left out
        assert where["batches"] >= 1 and where["mean_batch"] >= 1


def test_an_images_only_bench_loads_no_text_model(stack: Settings, tmp_path: Path) -> None:
    # as scripts/gpu-check.sh runs it: images only, no chart, a group of worker processes
    figures = run_bench(
        stack, tmp_path, "--no-text", "--no-chart", "--images", "8", "--naive-images", "4",
        "--redelivery-rounds", "2", "--workers", "2",
    )  # fmt: skip
    for key in ("image_e2e_ips", "image_model_ips", "image_naive_ips", "redelivery_ips"):
        assert figures[key] > 0, key
    assert not [key for key in figures if key.startswith("text_")]
    assert "memory_run_ips" not in figures and figures["redelivery_embedded"] == 0
    assert "chart" not in figures  # --no-chart, as scripts/gpu-check.sh runs it without matplotlib
    log = (stack.stack.state_dir / "bench-ingest-worker.log").read_text()
    assert log.count('topologies=["image"] agents=["ingest"]') == 2, log[-2000:]
    assert figures["workers"] == 2 and figures["peak_rss_mb"] > 0
    assert figures["image_e2e_where"]["batches"] >= 1  # summed over both processes' metrics
