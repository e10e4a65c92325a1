"""Draws docs/architecture.png, the README's picture: the stream layer around the one runner.

.venv/bin/python docs/architecture.py
"""

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

fig = Figure(figsize=(13, 6), dpi=110)
ax = fig.subplots()
ax.set_xlim(0, 130)
ax.set_ylim(0, 60)
ax.axis("off")


def box(x, y, w, h, text, color, size=8, bold=False):
    ax.add_patch(
        FancyBboxPatch(
            (x, y), w, h, boxstyle="round,pad=0.4,rounding_size=1.2", fc=color, ec="#333333", lw=1
        )
    )
    ax.text(
        x + w / 2,
        y + h / 2,
        text,
        ha="center",
        va="center",
        fontsize=size,
        weight="bold" if bold else "normal",
    )


def arrow(x1, y1, x2, y2, color="#333333", ls="-"):
    ax.add_patch(
        FancyArrowPatch(
            (x1, y1),
            (x2, y2),
            arrowstyle="-|>",
            mutation_scale=12,
            color=color,
            lw=1.2,
            linestyle=ls,
        )
    )


def note(x, y, text, color="#555555"):
    ax.text(x, y, text, fontsize=7.5, color=color)


KAFKA, STREAM, RUN, STORE, ERR = "#fde9c8", "#dbe9f7", "#d8f0d8", "#eadcf5", "#f7d4d4"
ax.text(
    20,
    55,
    "stream layer: routing, version targets, dedupe, sink, dead letters, acknowledgements",
    fontsize=9,
    color="#1f4e79",
)
box(1, 44, 14, 6, "media.uploads", KAFKA, 9)
box(20, 44, 17, 6, "intake\nvalidate · last per id\nroute to topologies", STREAM)
box(41, 44, 16, 6, "version targets\nserving · candidate\n· previous", STREAM)
box(62, 44, 17, 6, "dedupe\nRedis, then Milvus", STREAM)
box(112, 44, 16, 6, "sink\nMilvus upsert", STORE)
box(112, 30, 16, 6, "ack events,\ncommit offsets", STREAM)
box(1, 26, 14, 6, "media.deadletter", ERR, 9)
arrow(15, 47, 20, 47)
arrow(37, 47, 41, 47)
arrow(120, 44, 120, 36.2)

ax.add_patch(
    FancyBboxPatch(
        (20, 18),
        90,
        17,
        boxstyle="round,pad=0.4,rounding_size=1.5",
        fc="#f3fbf3",
        ec="#3a7d3a",
        lw=1.3,
        ls="--",
    )
)
ax.text(
    21.5,
    32.2,
    "one runner (streamer/runner): a topology's stages for a micro-batch",
    fontsize=9,
    color="#2d6a2d",
)
box(42, 21.5, 13, 6, "fetch", RUN)
box(60, 21.5, 22, 6, "decode → preprocess\nfused: one task per item", RUN)
box(86, 21.5, 11, 6, "embed\nbatches on\nthe device", RUN, 8, True)
box(100, 21.5, 9, 6, "normalize", RUN)
arrow(55, 24.5, 60, 24.5)
arrow(82, 24.5, 86, 24.5)
arrow(97, 24.5, 100, 24.5)
note(43, 15.2, "CPU pool", "#2d6a2d")
note(64, 15.2, "CPU pool, ahead of the model", "#2d6a2d")
note(86, 15.2, "model pool", "#2d6a2d")

arrow(49, 44, 48.5, 27.9, "#555555")
note(49.7, 37, "fetch once\nfor all versions")
arrow(53, 27.9, 66, 44, "#555555")
note(56.5, 39.5, "bytes +\nhash")
arrow(72, 44, 71, 27.9, "#555555")
note(72.3, 37, "new content only")
arrow(107, 27.9, 117, 44, "#555555")
arrow(28.5, 44, 14, 32.3, "#b03030", "--")
note(
    1.5, 19.5, "a typed error of any\nstage, delivered before\nthe batch is acknowledged", "#b03030"
)

box(1, 4, 14, 6, "search.requests", KAFKA, 9)
box(20, 4, 17, 6, "search service\nvalidate · coalesce", STREAM)
box(86, 4, 20, 6, "one Milvus search per\ncollection and filter", STORE)
box(112, 4, 16, 6, "search.results", KAFKA, 9)
arrow(15, 7, 20, 7)
arrow(33, 10, 44, 21.1, "#555555")
note(37.5, 12.5, "queries:\nthe whole chain")
arrow(104, 21.1, 98, 10.4, "#555555")
arrow(106, 7, 112, 7)
ax.text(
    65,
    0.5,
    "local runs (streamer run), rollout backfill and compare, and the benchmarks "
    "call the same runner",
    fontsize=8.5,
    color="#2d6a2d",
    ha="center",
)
fig.tight_layout()
fig.savefig(Path(__file__).with_suffix(".png"))
