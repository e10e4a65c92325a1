"""The ingest benchmark's figures: ratios against the goals, memory growth, the table."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = ["machine", "memory_figures", "print_figures", "progress", "ratios"]


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


def ratios(f: dict[str, Any]) -> dict[str, float]:
    def ratio(a: str, b: str) -> float:
        return round(float(f[a]) / max(float(f[b]), 1e-9), 2)

    return {
        "image_e2e_over_model": ratio("image_e2e_ips", "image_model_ips"),
        "text_e2e_over_model": ratio("text_e2e_ips", "text_model_ips"),
        "image_e2e_over_naive": ratio("image_e2e_ips", "image_naive_ips"),
        "text_e2e_over_naive": ratio("text_e2e_ips", "text_naive_ips"),
        "redelivery_over_first": ratio("redelivery_ips", "first_ingest_ips"),
    }


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

    table.add_row(
        f"image model-only (batch {f['image_batch_size']})", f"{f['image_model_ips']}", "", ""
    )
    table.add_row(
        "image end to end (1920x1280 JPEG)",
        f"{f['image_e2e_ips']}",
        f"{f['image_e2e_over_model']}x model, {f['image_e2e_over_naive']}x naive",
        f"{check(f['image_e2e_over_model'], 0.8)} model, {check(f['image_e2e_over_naive'], 1.6)}",
    )
    table.add_row("image naive per-item", f"{f['image_naive_ips']}", "", "")
    table.add_row(
        f"text model-only (batch {f['text_batch_size']})", f"{f['text_model_ips']}", "", ""
    )
    table.add_row(
        "text end to end",
        f"{f['text_e2e_ips']}",
        f"{f['text_e2e_over_model']}x model, {f['text_e2e_over_naive']}x naive",
        f"{check(f['text_e2e_over_model'], 0.8)} model, {check(f['text_e2e_over_naive'], 4)}",
    )
    table.add_row("text naive per-item", f"{f['text_naive_ips']}", "", "")
    table.add_row(
        "re-delivery of indexed images",
        f"{f['redelivery_ips']}",
        f"{f['redelivery_over_first']}x first ingest",
        check(f["redelivery_over_first"], 50),
    )
    table.add_row(
        f"memory run ({f['memory_run_ips']} items/s)",
        "",
        f"RSS {f['rss_warm_mb']} -> {f['rss_end_mb']} MB ({f['rss_growth_pct']:+.1f} %)",
        f"{'✓' if abs(f['rss_growth_pct']) <= 10 else '✗'} within 10 %",
    )
    table.add_row("worker peak RSS", f"{f['peak_rss_mb']} MB", "", "")
    console.print(table)
    console.print(f"took {f['seconds']} s" + (f"; chart: {f['chart']}" if "chart" in f else ""))
