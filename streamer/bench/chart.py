"""The benchmark's picture: throughput per path against its baselines, and worker memory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamer.bench.report import measured_media
from streamer.core.extras import require

__all__ = ["require_chart", "write_chart"]


def require_chart() -> None:
    """Raise :class:`~streamer.core.errors.ConfigError` if the chart could not be drawn: a
    benchmark asks before it runs, not after minutes of measuring."""
    require(
        "matplotlib",
        extra="charts",
        feature="the benchmark's chart",
        instead="leave the chart out: --no-chart",
    )


def write_chart(path: Path, figures: dict[str, Any], memory: Sequence[tuple[int, float]]) -> Path:
    """A PNG with three panels: image and text items/s (model-only ceiling, streamer end to
    end, naive baseline), first ingest vs re-delivery, and worker RSS across the memory run."""
    require_chart()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.6), width_ratios=[2.2, 1.2, 2])
    groups = measured_media(figures)
    series = (
        ("model-only ceiling", "model_ips", "#9aa5b1"),
        ("streamer end to end", "e2e_ips", "#1f77b4"),
        ("naive per-item", "naive_ips", "#d62728"),
    )
    width = 0.26
    for offset, (label, suffix, color) in enumerate(series):
        xs = [g + (offset - 1) * width for g in range(len(groups))]
        values = [float(figures[f"{name}_{suffix}"]) for name in groups]
        bars = ax1.bar(xs, values, width, label=label, color=color)
        ax1.bar_label(bars, fmt="%.0f", fontsize=8)
    names = {"image": "images 1920x1280 JPEG", "text": "short texts"}
    ax1.set_xticks(range(len(groups)), [names[g] for g in groups])
    ax1.set_ylabel("items / s")
    ax1.set_title("throughput")
    ax1.legend(fontsize=8)

    values = [float(figures["first_ingest_ips"]), float(figures["redelivery_ips"])]
    bars = ax2.bar(["first ingest", "re-delivery"], values, color=["#1f77b4", "#2ca02c"])
    ax2.bar_label(bars, fmt="%.0f", fontsize=8)
    ax2.set_yscale("log")
    ax2.set_ylabel("images / s (log)")
    ax2.set_title(f"re-delivery {figures['redelivery_over_first']}x faster")

    if memory:
        done, rss = zip(*memory, strict=True)
        ax3.plot(done, rss, color="#9467bd")
        ax3.set_ylim(0, max(rss) * 1.15)
    ax3.set_xlabel("items processed in the memory run")
    ax3.set_ylabel("worker RSS (MB)")
    growth = figures.get("rss_growth_pct")
    ax3.set_title(
        f"worker memory: {growth:+.1f} % over the run" if growth is not None else "no memory run"
    )

    fig.suptitle(f"streamer bench on {figures['machine']}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
