"""``streamer demo``: the main job, end to end on the embedded stack.

It starts the stack, publishes real sample photos and short texts (and two broken inputs, to
show the dead-letter path), runs a worker until everything is indexed, searches through the
query topics (image-to-image with transformed copies of the photos, text-to-text with
paraphrases), prints the results, and stops what it started. The demo works in its own topics,
collections and Redis keys, so it never touches your data; it starts from a clean slate.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from operators.fetch import path_to_uri
from streamer.config.connections import redis_client
from streamer.config.settings import Settings, namespaced, settings_env
from streamer.core.errors import StreamerError
from streamer.core.messages import SearchResult, UploadMessage
from streamer.core.stats import Stats
from streamer.demo.samples import TEXT_PAIRS, transformed_copy, write_photos
from streamer.demo.video import SCENE_S, frame_at, write_videos
from streamer.ingest.producer import publish_raw
from streamer.kafka.topics import ensure_topics
from streamer.query.client import SearchClient
from streamer.runner.topology import Topology
from streamer.stack.embedded import down as stack_down
from streamer.stack.embedded import recorded_settings
from streamer.stack.embedded import up as stack_up
from streamer.stack.processes import start_worker, terminate
from streamer.storage.store import VectorStore

__all__ = ["run_demo"]

PREFIX = "demo"
Row = tuple[str, str, float, bool]
INDEX_TIMEOUT_S = 600.0


def _reset(settings: Settings, store: VectorStore, client: redis.Redis) -> None:
    for name in store.collections(settings.milvus.collection_prefix):
        store.drop(name)
    for key in client.scan_iter(match=f"{settings.redis.key_prefix}:*", count=1000):
        client.delete(key)


def _uploads(media: Path) -> tuple[list[UploadMessage], list[tuple[bytes | None, bytes]]]:
    photos = write_photos(media)
    good = [
        UploadMessage(
            id=f"photo-{name}",
            uri=path_to_uri(path),
            metadata={"source": "scikit-image", "name": name},
        )
        for name, path in photos.items()
    ]
    good += [
        UploadMessage(id=f"text-{i:02d}", text=sentence, metadata={"source": "demo"})
        for i, (sentence, _) in enumerate(TEXT_PAIRS)
    ]
    good += [
        UploadMessage(
            id=f"video-{name}", uri=path_to_uri(path), metadata={"source": "demo", "name": name}
        )
        for name, path in write_videos(media / "videos").items()
    ]
    (media / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    bad: list[tuple[bytes | None, bytes]] = [
        (
            b"broken-photo",
            UploadMessage(id="broken-photo", uri=path_to_uri(media / "broken.jpg")).to_bytes(),
        ),
        (b"malformed", b'{"id": "malformed", "uri": '),
    ]
    return good, bad


def run_demo(
    settings: Settings,
    *,
    keep_up: bool = False,
    quiet: bool = False,
    topologies: Sequence[Topology] | None = None,
) -> dict[str, Any]:
    """``topologies``: those the demo's worker serves (default: the settings'); each upload
    goes to every one that takes its medium, and an upload no topology takes is one more
    dead letter."""
    from streamer.runner.served import load_topologies

    served = list(topologies or load_topologies(settings.runtime.topologies))
    started_at = time.perf_counter()
    console = Console(stderr=quiet)
    state, started_stack = stack_up(settings)
    console.print(
        f"[bold]embedded stack[/] kafka {state.kafka_bootstrap} · redis "
        f"{state.redis_url} · milvus {state.milvus_uri}"
    )
    base = recorded_settings(settings)
    demo_dir = base.stack.state_dir / "demo"
    media = demo_dir / "media"
    media.mkdir(parents=True, exist_ok=True)
    settings = namespaced(base, PREFIX, (media,))
    store = VectorStore(settings.milvus)
    client = redis_client(settings.redis)
    worker: subprocess.Popen[bytes] | None = None
    try:
        _reset(settings, store, client)
        asyncio.run(ensure_topics(settings.kafka))
        good, bad = _uploads(media)
        worker = start_worker(settings_env(settings), demo_dir / "worker.log")
        records = [(u.id.encode(), u.to_bytes()) for u in good] + bad
        asyncio.run(publish_raw(settings.kafka, records, topic=settings.kafka.uploads_topic))
        console.print(
            f"published {len(good)} uploads and {len(bad)} broken inputs "
            f"to {settings.kafka.uploads_topic}"
        )

        stats = Stats(client, prefix=settings.redis.key_prefix)
        expected = {t.name: [u.id for u in good if u.media_type == t.media_type] for t in served}
        unrouted = [u for u in good if not any(t.media_type == u.media_type for t in served)]
        bad_count = len(bad) + len(unrouted)
        topologies_by_name = {t.name: t for t in served}
        indexed, dead = _wait_indexed(
            settings, store, stats, expected, topologies_by_name, bad_count, worker, console
        )
        media_types = {t.media_type for t in served}
        image_rows, text_rows, video_rows = _searches(settings, media, media_types)
        self_top1 = sum(r[-1] for r in image_rows) / max(1, len(image_rows))
        text_top1 = sum(r[-1] for r in text_rows) / max(1, len(text_rows))
        video_top1 = sum(r[-1] for r in video_rows) / max(1, len(video_rows))
        counters = stats.read()
        _print_results(console, image_rows, text_rows, video_rows, counters)
        summary = {
            "indexed": indexed,
            "expected": sum(len(ids) for ids in expected.values()),
            "dead_lettered": dead,
            "dead_letters_expected": bad_count,
            "self_top1": round(self_top1, 4),
            "text_top1": round(text_top1, 4),
            "video_top1": round(video_top1, 4),
            "image_queries": len(image_rows),
            "text_queries": len(text_rows),
            "video_queries": len(video_rows),
            "model_calls": counters.get("embedded", 0),
            "search_requests": counters.get("search_requests", 0),
            "search_calls": counters.get("search_calls", 0),
            "seconds": round(time.perf_counter() - started_at, 1),
        }
        console.print(
            f"[bold]indexed {indexed}/{summary['expected']}[/], dead letters {dead}, "
            f"image self-top1 {self_top1:.0%}, text paraphrase top1 {text_top1:.0%}, "
            f"video frame top1 {video_top1:.0%}, {summary['seconds']}s"
        )
        return summary
    finally:
        if worker is not None:
            terminate(worker)
        store.close()
        if started_stack and not keep_up:
            stack_down(settings)
            console.print("stopped the embedded stack")


def _wait_indexed(
    settings: Settings,
    store: VectorStore,
    stats: Stats,
    expected: dict[str, list[str]],
    topologies: dict[str, Topology],
    bad: int,
    worker: subprocess.Popen[bytes],
    console: Console,
) -> tuple[int, int]:
    total = sum(len(ids) for ids in expected.values())
    deadline = time.monotonic() + INDEX_TIMEOUT_S
    columns = (TextColumn("indexing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    indexed = dead = 0
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("indexing", total=total)
        while time.monotonic() < deadline:
            indexed = 0
            for name, ids in expected.items():
                collection = topologies[name].collection_name(
                    prefix=settings.milvus.collection_prefix
                )
                if collection in store.collections(collection):
                    indexed += len(store.read_rows(collection, ids))
            dead = stats.read().get("dead_lettered", 0)
            progress.update(task, completed=indexed)
            if indexed >= total and dead >= bad:
                break
            if worker.poll() is not None:
                raise StreamerError(
                    f"the demo worker exited with {worker.returncode}; "
                    f"see {settings.stack.state_dir / 'demo' / 'worker.log'}"
                )
            time.sleep(0.5)
    return indexed, dead


def _searches(
    settings: Settings, media: Path, media_types: set[str]
) -> tuple[list[Row], list[Row], list[Row]]:
    """Image-to-image, text-to-text and frame-to-video (where topologies serve them), through
    the query topics like any application."""
    queries = media / "queries"
    queries.mkdir(exist_ok=True)
    image_requests: list[tuple[str, str, Path]] = []
    for variant in range(2 if "image" in media_types else 0):
        for path in sorted(media.glob("*.jpg")):
            if path.stem == "broken":
                continue
            copy = queries / f"{path.stem}-copy{variant + 1}.jpg"
            copy.write_bytes(transformed_copy(path, variant))
            image_requests.append((f"{path.stem} (copy {variant + 1})", f"photo-{path.stem}", copy))
    text_requests = [
        (query, f"text-{i:02d}") for i, (_, query) in enumerate(TEXT_PAIRS) if "text" in media_types
    ]
    # a frame from the middle of each video's second scene, as a photo: it finds its video
    video_requests: list[tuple[str, str, Path]] = []
    for path in sorted((media / "videos").glob("*.mp4")) if "video" in media_types else []:
        frame = queries / f"{path.stem}-frame.jpg"
        frame_at(path, 1.5 * SCENE_S).save(frame, "JPEG", quality=85)
        label = f"{path.name} at {1.5 * SCENE_S:g} s"
        video_requests.append((label, f"video-{path.stem}", frame))

    async def ask() -> tuple[list[SearchResult], list[SearchResult], list[SearchResult]]:
        async with SearchClient(settings.kafka, timeout_s=120) as client:
            images = asyncio.gather(
                *(client.search(image_path=path, top_k=3) for _, _, path in image_requests)
            )
            texts = asyncio.gather(*(client.search(q, top_k=3) for q, _ in text_requests))
            videos = asyncio.gather(
                *(
                    client.search(image_path=path, topology="video", top_k=3)
                    for _, _, path in video_requests
                )
            )
            return await images, await texts, await videos

    image_results, text_results, video_results = asyncio.run(ask())
    image_rows = [
        _row(label, expected, result)
        for (label, expected, _), result in zip(image_requests, image_results, strict=True)
    ]
    sentences = {f"text-{i:02d}": sentence for i, (sentence, _) in enumerate(TEXT_PAIRS)}
    text_rows = [
        _row(query, expected, result, sentences)
        for (query, expected), result in zip(text_requests, text_results, strict=True)
    ]
    video_rows = [
        _row(label, expected, result)
        for (label, expected, _), result in zip(video_requests, video_results, strict=True)
    ]
    return image_rows, text_rows, video_rows


def _row(
    label: str, expected: str, result: SearchResult, names: dict[str, str] | None = None
) -> Row:
    if result.error or not result.hits:
        return (label, result.error or "no hits", 0.0, False)
    best = result.hits[0]
    return (label, (names or {}).get(best.id, best.id), best.score, best.id == expected)


def _print_results(
    console: Console,
    image_rows: list[Row],
    text_rows: list[Row],
    video_rows: list[Row],
    counters: dict[str, int],
) -> None:
    _table(
        console,
        "image → image: transformed copies find their original",
        "query (resized, recompressed, cropped)",
        image_rows,
    )
    _table(console, "text → text: paraphrases find their sentence", "query", text_rows)
    if video_rows:
        _table(
            console,
            "image → video: a frame finds the video it came from",
            "query (a frame)",
            video_rows,
        )
    console.print("worker counters: " + ", ".join(f"{k}={v}" for k, v in sorted(counters.items())))


def _table(console: Console, title: str, query: str, rows: list[Row]) -> None:
    table = Table(title=title)
    for column in (query, "top hit", "score", ""):
        table.add_column(column)
    for label, hit, score, ok in rows:
        table.add_row(label, hit, f"{score:.3f}", "✓" if ok else "✗")
    console.print(table)
