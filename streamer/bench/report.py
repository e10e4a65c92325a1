"""The ingest benchmark's figures: ratios against the goals, memory growth, the table."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = [
    "machine",
    "measured_media",
    "memory_figures",
    "print_figures",
    "progress",
    "ratios",
]


def machine() -> str:
    import torch

    from streamer.models.calibration import cpu_model

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu_model()}, {cores} cores{gpu}, {platform.system()} {platform.machine()}"


def memory_figures(trace: Sequence[tuple[int, float]], total: int) -> dict[str, float]:
    """RSS once the run is warm (10 % done) against the highest RSS after it."""
    warm = [rss for done, rss in trace if done >= total * 0.1]
    if not warm:
        return {"rss_warm_mb": 0.0, "rss_end_mb": 0.0, "rss_growth_pct": 0.0}
    start, peak = warm[0], max(warm)
    return {
        "rss_warm_mb": start,
        "rss_end_mb": trace[-1][1],
        "rss_growth_pct": 100 * (peak - start) / start if start else 0.0,
    }


#: per medium measured: its end-to-end goal over the naive baseline
NAIVE_GOALS = {"image": 1.6, "text": 4.0}
TITLES = {"image": "image end to end (1920x1280 JPEG)", "text": "text end to end"}


def measured_media(f: dict[str, Any]) -> list[str]:
    """The media a run measured (an images-only run has no text figures)."""
    return [m for m in NAIVE_GOALS if f"{m}_e2e_ips" in f]


def ratios(f: dict[str, Any]) -> dict[str, float]:
    def ratio(a: str, b: str) -> float:
        return round(float(f[a]) / max(float(f[b]), 1e-9), 2)

    found = {"redelivery_over_first": ratio("redelivery_ips", "first_ingest_ips")}
    for medium in measured_media(f):
        found[f"{medium}_e2e_over_model"] = ratio(f"{medium}_e2e_ips", f"{medium}_model_ips")
        found[f"{medium}_e2e_over_naive"] = ratio(f"{medium}_e2e_ips", f"{medium}_naive_ips")
    if "text_mixed_by_length_ips" in f:
        found["text_by_length_over_arrival"] = ratio(
            "text_mixed_by_length_ips", "text_mixed_arrival_ips"
        )
    if "image_e2e_ips" in f:
        # the slower of the stages the GPU runs (decode there, when it decodes)
        ceiling = min(f["image_model_ips"], f.get("image_device_decode_ips", float("inf")))
        found["image_ceiling_ips"] = round(float(ceiling), 2)
        found["image_e2e_over_ceiling"] = round(float(f["image_e2e_ips"]) / max(ceiling, 1e-9), 2)
    return found


class progress:
    """A progress bar (``advance(done)`` sets the count) that disappears when done."""

    def __init__(self, console: Console, label: str, total: int) -> None:
        self.progress = Progress(
            TextColumn(label),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task(label, total=total)

    def __enter__(self) -> Callable[[int], None]:
        self.progress.start()
        return lambda done: self.progress.update(self.task, completed=max(0, done))

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def print_figures(console: Console, f: dict[str, Any]) -> None:
    table = Table(title=f"ingest benchmark on {f['machine']} ({f['device']})")
    for column in ("measure", "items/s", "ratio", "goal"):
        table.add_column(column)

    def check(value: float, goal: float) -> str:
        return f"{'✓' if value >= goal else '✗'} ≥ {goal}x"

    for m in measured_media(f):
        table.add_row(f"{m} model-only (batch {f[f'{m}_batch_size']})", f"{f[f'{m}_model_ips']}")
        if m == "image":
            if "image_device_decode_ips" in f:
                table.add_row("image JPEG decode on the GPU", f"{f['image_device_decode_ips']}")
            if "image_prepare_ips" in f:
                table.add_row(
                    f"image CPU prepare ({f['image_prepare_threads']} threads)",
                    f"{f['image_prepare_ips']}",
                )
            if "image_e2e_over_ceiling" in f and "image_device_decode_ips" in f:
                table.add_row(
                    "image end to end against the GPU's ceiling",
                    f"{f['image_ceiling_ips']}",
                    f"{f['image_e2e_over_ceiling']}x",
                    check(f["image_e2e_over_ceiling"], 0.8),
                )
            if "gpu_busy_pct" in f:
                table.add_row(
                    "GPU busy during image end to end", f"{f['gpu_busy_pct']:.0f} %", "", "≥ 50 %"
                )
        over_model, over_naive = f[f"{m}_e2e_over_model"], f[f"{m}_e2e_over_naive"]
        table.add_row(
            TITLES[m],
            f"{f[f'{m}_e2e_ips']}",
            f"{over_model}x model, {over_naive}x naive",
            f"{check(over_model, 0.8)} model, {check(over_naive, NAIVE_GOALS[m])}",
        )
        table.add_row(f"{m} naive per-item", f"{f[f'{m}_naive_ips']}")
        if m == "text" and "text_by_length_over_arrival" in f:
            tokens = f"median {f['text_mixed_tokens_median']}, max {f['text_mixed_tokens_max']}"
            table.add_row(
                f"text of mixed lengths ({tokens} tokens), calls in arrival order",
                f"{f['text_mixed_arrival_ips']}",
            )
            table.add_row(
                "the same texts, calls cut by length",
                f"{f['text_mixed_by_length_ips']}",
                f"{f['text_by_length_over_arrival']}x arrival order",
            )
    table.add_row(
        "re-delivery of indexed images",
        f"{f['redelivery_ips']}",
        f"{f['redelivery_over_first']}x first ingest",
        check(f["redelivery_over_first"], 50),
    )
    if "memory_run_ips" in f:
        table.add_row(
            f"memory run ({f['memory_run_ips']} items/s)",
            "",
            f"RSS {f['rss_warm_mb']} -> {f['rss_end_mb']} MB ({f['rss_growth_pct']:+.1f} %)",
            f"{'✓' if abs(f['rss_growth_pct']) <= 10 else '✗'} within 10 %",
        )
    if "sink_rows_per_s" in f:
        table.add_row("sink alone (rows/s into the vector store)", f"{f['sink_rows_per_s']}")
    table.add_row("worker peak RSS", f"{f['peak_rss_mb']} MB", "", "")
    console.print(table)
    for m in measured_media(f):
        if f"{m}_e2e_where" in f:
            console.print(where_table(m, f[f"{m}_e2e_where"]))
    console.print(f"took {f['seconds']} s" + (f"; chart: {f['chart']}" if "chart" in f else ""))


def where_table(medium: str, where: dict[str, Any]) -> Table:
    """Where one end-to-end phase's time went, from the worker's own metrics: per stage, the
    seconds from its start to its end summed over chunks (waits included: chunks in flight
    together overlap), and the seconds its threads were busy, as a share of the phase's wall
    time (100 % is one thread busy throughout: a model thread near it bounds the phase)."""
    table = Table(
        title=f"{medium} end to end ({where['wall_s']} s), where the worker's time went: "
        f"{where['batches']} batches of {where['mean_batch']} on average, "
        f"{where['cold_calls']} cold model calls"
    )
    for column in ("stage", "start to end, summed (s)", "threads busy (s)", "busy / wall"):
        table.add_column(column)
    for stage, t in where["stages"].items():
        table.add_row(stage, f"{t['seconds']}", f"{t['busy_s']}", f"{t['busy_pct']} %")
    return table
