"""``streamer bench trainer``: the query trainer's loop with an oracle annotator, measured.

The labelled set is scikit-learn's handwritten digits (1,797 8x8 images, ten classes; shipped
with scikit-learn, no download), drawn as 224x224 photos (black on white) and embedded by the
``image`` topology's real model, as uploads would be. A seeded split keeps 30 % aside. For each
class, a training session starts from one photo of that class (an image query), then runs
``rounds`` rounds: it shows ``k`` results not seen yet (the top of its ranking and, once
trained, its decision boundary: ``STREAMER_TRAINER_EXPLORE``), the oracle labels them +1 or -1
by the true class, and it trains (``STREAMER_TRAINER_*``). Beside it, random sampling labels as
many photos drawn at random and trains the same classifier from the same query.

Printed per round, averaged over the classes: the positives found per label by each (the
trainer's over random's is how much labelling effort it saves), and the held-out precision,
recall and F1 of both classifiers (a logit above 0 says yes). The last line of ``--json`` holds
``positives_over_random`` and ``f1`` (after the last round), among others.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image
from rich.console import Console
from rich.table import Table

from streamer.config.cpus import available_cores
from streamer.config.settings import Settings, TrainerSettings
from streamer.core.errors import StageError
from streamer.models.loading import plans_for
from streamer.runner.runner import Runner
from streamer.trainer import MemoryIndex, TrainingSession

__all__ = ["digit_photos", "run_trainer_bench", "scores"]

HELD_OUT = 0.3


def digit_photos() -> tuple[list[bytes], npt.NDArray[np.int64]]:
    """scikit-learn's digits as PNG photos (224x224, black on white) and their classes."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - a dependency of the text model's package
        raise RuntimeError("bench trainer needs scikit-learn: pip install scikit-learn") from exc
    digits = load_digits()
    photos = []
    for image in digits.images:
        gray = (255 - image / 16.0 * 255).astype(np.uint8)
        photo = Image.fromarray(gray).resize((224, 224), Image.Resampling.BILINEAR).convert("RGB")
        out = io.BytesIO()
        photo.save(out, "PNG")
        photos.append(out.getvalue())
    return photos, np.asarray(digits.target, dtype=np.int64)


def scores(predicted: npt.NDArray[np.bool_], truth: npt.NDArray[np.bool_]) -> dict[str, float]:
    """Precision, recall and F1 of ``predicted`` against ``truth``."""
    hits = int((predicted & truth).sum())
    precision = hits / max(int(predicted.sum()), 1)
    recall = hits / max(int(truth.sum()), 1)
    f1 = 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1}


def _embed(settings: Settings, photos: Sequence[bytes], console: Console) -> npt.NDArray[Any]:
    from topologies import IMAGE

    plan = plans_for(settings, measure=False).get(IMAGE)
    runner = Runner.with_threads(available_cores(), 1, name="bench-trainer")
    try:
        outs = []
        step = 256
        for start in range(0, len(photos), step):
            outs += asyncio.run(runner.run(plan, photos[start : start + step], first=1))
            console.print(f"  embedded {min(start + step, len(photos))} of {len(photos)}")
    finally:
        runner.close()
    failed = [o for o in outs if isinstance(o, StageError)]
    if failed:
        raise RuntimeError(f"digits failed to embed: {failed[:3]}")
    return np.stack(outs).astype(np.float32)


def _run_class(
    target: int,
    train: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32],
    classes: npt.NDArray[np.int64],
    test: npt.NDArray[np.int64],
    *,
    rounds: int,
    trainer: TrainerSettings,
    pick: Callable[[TrainingSession, MemoryIndex], list[str]],
) -> list[dict[str, float]]:
    """One session for class ``target``; per round: positives found so far per label, and the
    held-out scores of its classifier."""
    ids = [str(i) for i in train]
    index = MemoryIndex(ids, vectors[train])
    start = int(train[classes[train] == target][0])
    session = TrainingSession.from_query(vectors[start], settings=trainer)
    session.seen.add(str(start))  # the query itself is not a result to label
    truth = classes[test] == target
    found = labelled = 0
    out = []
    for _ in range(rounds):
        for asset_id in pick(session, index):
            yes = int(classes[int(asset_id)]) == target
            session.label(asset_id, vectors[int(asset_id)], 1.0 if yes else -1.0)
            found += yes
            labelled += 1
        session.train()
        logits = vectors[test] @ session.weights.astype(np.float32) + session.bias
        out.append({"positives_per_label": found / labelled, **scores(logits > 0, truth)})
    return out


def run_trainer_bench(
    settings: Settings,
    *,
    rounds: int = 10,
    k: int = 10,
    classes: Sequence[int] = tuple(range(10)),
    photos: int | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """The loop per class of ``classes``, over all the digits (or the first ``photos``)."""
    console = console or Console()
    trainer = settings.trainer
    started = time.perf_counter()
    console.print("drawing scikit-learn's digits as photos and embedding them (image model) …")
    images, labels = digit_photos()
    images, labels = images[:photos], labels[:photos]
    vectors = _embed(settings, images, console)
    embed_s = time.perf_counter() - started
    order = np.random.default_rng(0).permutation(len(labels))
    cut = int(len(labels) * (1 - HELD_OUT))
    train, test = order[:cut], order[cut:]

    def by_trainer(session: TrainingSession, index: MemoryIndex) -> list[str]:
        return [c.id for c in session.next(index, k)]

    def at_random(seed: int) -> Callable[[TrainingSession, MemoryIndex], list[str]]:
        rng = np.random.default_rng(seed)

        def pick(session: TrainingSession, index: MemoryIndex) -> list[str]:
            unseen = [i for i in index.ids if i not in session.seen]
            chosen = [str(i) for i in rng.choice(unseen, size=min(k, len(unseen)), replace=False)]
            session.seen.update(chosen)
            return chosen

        return pick

    runs: dict[str, list[list[dict[str, float]]]] = {"trainer": [], "random": []}
    for target in classes:
        for name, pick in (("trainer", by_trainer), ("random", at_random(target))):
            ran = _run_class(
                target, train, vectors, labels, test, rounds=rounds, trainer=trainer, pick=pick
            )
            runs[name].append(ran)

    def mean(name: str, r: int, key: str) -> float:
        return float(np.mean([per_class[r][key] for per_class in runs[name]]))

    per_round = []
    for r in range(rounds):
        mine = mean("trainer", r, "positives_per_label")
        chance = mean("random", r, "positives_per_label")
        per_round.append(
            {
                "round": r + 1,
                "labels": (r + 1) * k,
                "positives_per_label": round(mine, 3),
                "random_positives_per_label": round(chance, 3),
                "positives_over_random": round(mine / max(chance, 1e-9), 2),
                "precision": round(mean("trainer", r, "precision"), 3),
                "recall": round(mean("trainer", r, "recall"), 3),
                "f1": round(mean("trainer", r, "f1"), 3),
                "random_f1": round(mean("random", r, "f1"), 3),
            }
        )
    table = Table(
        title=f"query trainer on digits: {len(classes)} classes, {rounds} rounds of {k} labels "
        f"(held out: {len(test)} photos)"
    )
    for column in ("round", "labels", "pos/label", "random", "ratio", "P", "R", "F1",
                   "F1 random"):  # fmt: skip
        table.add_column(column, justify="right")
    for row in per_round:
        table.add_row(
            str(row["round"]), str(row["labels"]), f"{row['positives_per_label']:.2f}",
            f"{row['random_positives_per_label']:.2f}", f"{row['positives_over_random']:.1f}x",
            f"{row['precision']:.2f}", f"{row['recall']:.2f}", f"{row['f1']:.2f}",
            f"{row['random_f1']:.2f}",
        )  # fmt: skip
    console.print(table)
    last = per_round[-1]
    return {
        "trainer_classes": len(classes),
        "trainer_rounds": rounds,
        "trainer_labels_per_round": k,
        "trainer_held_out": len(test),
        "trainer_embed_s": round(embed_s, 1),
        "positives_per_label": last["positives_per_label"],
        "random_positives_per_label": last["random_positives_per_label"],
        "positives_over_random": last["positives_over_random"],
        "precision": last["precision"],
        "recall": last["recall"],
        "f1": last["f1"],
        "random_f1": last["random_f1"],
        "rounds_to_f1_0_8": next((r["round"] for r in per_round if r["f1"] >= 0.8), None),
        "per_round": per_round,
    }
