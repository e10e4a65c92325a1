from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from streamer.bench.chart import write_chart
from streamer.bench.report import measured_media, print_figures, ratios

IMAGE = {
    "machine": "test machine",
    "device": "cpu (fp32)",
    "image_batch_size": 4,
    "image_model_ips": 100.0,
    "image_e2e_ips": 80.0,
    "image_naive_ips": 20.0,
    "first_ingest_ips": 80.0,
    "redelivery_ips": 4000.0,
    "peak_rss_mb": 900.0,
    "seconds": 12.0,
}
TEXT = {
    "text_batch_size": 32,
    "text_model_ips": 500.0,
    "text_e2e_ips": 400.0,
    "text_naive_ips": 50.0,
    "memory_run_ips": 300.0,
    "rss_warm_mb": 900.0,
    "rss_end_mb": 910.0,
    "rss_growth_pct": 1.1,
}


def report(figures: dict[str, Any], tmp_path: Path) -> str:
    figures = {**figures, **ratios(figures)}
    console = Console(record=True, width=160)
    print_figures(console, figures)
    chart = write_chart(tmp_path / "bench.png", figures, [(0, 900.0), (100, 910.0)])
    assert chart.read_bytes()[:4] == b"\x89PNG"
    return console.export_text()


def test_an_images_only_run_reports_images_and_no_text(tmp_path: Path) -> None:
    assert measured_media(IMAGE) == ["image"]
    assert ratios(IMAGE) == {
        "redelivery_over_first": 50.0,
        "image_e2e_over_model": 0.8,
        "image_e2e_over_naive": 4.0,
        "image_ceiling_ips": 100.0,
        "image_e2e_over_ceiling": 0.8,
    }
    text = report(IMAGE, tmp_path)
    assert "image end to end" in text and "0.8x model, 4.0x naive" in text
    assert "text" not in text.replace("test machine", "") and "memory run" not in text


def test_a_full_run_reports_both_media_and_memory(tmp_path: Path) -> None:
    figures = {**IMAGE, **TEXT}
    assert measured_media(figures) == ["image", "text"]
    assert ratios(figures)["text_e2e_over_naive"] == 8.0
    text = report(figures, tmp_path)
    assert "text end to end" in text and "memory run (300.0 items/s)" in text


def test_texts_of_mixed_length_report_calls_cut_by_length_against_arrival_order(
    tmp_path: Path,
) -> None:
    figures = {
        **IMAGE,
        **TEXT,
        "text_mixed_arrival_ips": 35.0,
        "text_mixed_by_length_ips": 115.5,
        "text_mixed_tokens_median": 34,
        "text_mixed_tokens_max": 256,
    }
    assert ratios(figures)["text_by_length_over_arrival"] == 3.3
    text = report(figures, tmp_path)
    assert "text of mixed lengths (median 34, max 256 tokens), calls in arrival order" in text
    assert "cut by length" in text and "3.3x arrival order" in text
    assert "text_by_length_over_arrival" not in ratios({**IMAGE, **TEXT})


def test_a_gpu_run_reports_its_ceilings_against_the_slower_of_decode_and_model(
    tmp_path: Path,
) -> None:
    gpu = {
        **IMAGE,
        "device": "cuda (bf16)",
        "image_model_ips": 6000.0,
        "image_device_decode_ips": 3000.0,
        "image_prepare_ips": 950.0,
        "image_prepare_threads": 16,
        "image_e2e_ips": 2500.0,
        "gpu_busy_pct": 62.5,
        "sink_rows_per_s": 40000.0,
    }
    found = ratios(gpu)
    assert found["image_ceiling_ips"] == 3000.0  # decode is the slower stage on the GPU
    assert found["image_e2e_over_ceiling"] == 0.83
    text = report(gpu, tmp_path)
    for row in (
        "image JPEG decode on the GPU",
        "image CPU prepare (16 threads)",
        "against the GPU's ceiling",
        "GPU busy during image end to end",
        "62 %",
        "sink alone",
    ):
        assert row in text


def test_a_bench_without_matplotlib_says_so_before_it_measures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from streamer.bench import ingest
    from streamer.config.settings import Settings
    from streamer.core.errors import ConfigError

    find_spec = importlib.util.find_spec

    def without_matplotlib(name: str, *args: Any) -> Any:
        return None if name == "matplotlib" else find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_matplotlib)

    def no_stack(*_: Any) -> None:
        raise AssertionError("the stack started before the chart was checked")

    monkeypatch.setattr(ingest, "stack_up", no_stack)
    with pytest.raises(ConfigError, match=r"matplotlib.*--no-chart"):
        ingest.run_ingest_bench(Settings(), chart=tmp_path / "bench.png")
