"""``streamer bench``: the ingest benchmark; ``bench search`` for the query service, ``bench
sink`` for the Milvus sink, ``bench promote`` for searches during a rollout's promotion,
``bench decode`` for JPEG decoding (Pillow and OpenCV), ``bench produce`` for producers
(confluent-kafka and aiokafka), ``bench video`` for the video topology, ``bench trainer`` for
the query trainer's loop."""

from __future__ import annotations

import json
from pathlib import Path

import click

from streamer.bench import BenchSizes
from streamer.cli.common import load, served, topologies_option

__all__ = ["bench"]


_SIZES = BenchSizes()


@click.group(invoke_without_command=True)
@click.option("--images", default=_SIZES.images, show_default=True, type=click.IntRange(8))
@click.option("--texts", default=_SIZES.texts, show_default=True, type=click.IntRange(64))
@click.option(
    "--naive-images", default=_SIZES.naive_images, show_default=True, type=click.IntRange(4)
)
@click.option(
    "--naive-texts", default=_SIZES.naive_texts, show_default=True, type=click.IntRange(16)
)
@click.option(
    "--redelivery-rounds",
    default=_SIZES.redelivery_rounds,
    show_default=True,
    type=click.IntRange(1),
)
@click.option(
    "--memory-items", default=_SIZES.memory_items, show_default=True, type=click.IntRange(100)
)
@click.option(
    "--mixed-texts",
    default=_SIZES.mixed_texts,
    show_default=True,
    type=click.IntRange(0),
    help="Texts of mixed length through the text model, calls in arrival order and cut by "
    "length (0: not measured).",
)
@click.option(
    "--chart",
    default="streamer-bench.png",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the PNG chart.",
)
@click.option(
    "--no-chart",
    is_flag=True,
    help="No chart (for an installation without matplotlib, such as a bare GPU machine).",
)
@click.option(
    "--no-text",
    is_flag=True,
    help="Images only: no text model is loaded (the worker serves topologies:IMAGE unless "
    "--topologies says otherwise) and the memory run, which uses texts, is left out.",
)
@click.option(
    "--workers",
    default=_SIZES.workers,
    show_default=True,
    type=click.IntRange(1, 16),
    help="Worker processes in one consumer group for the end-to-end phases (the cores split "
    "between them; on a GPU they share it): one Python process's lock bounds a GPU worker.",
)
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of figures.")
@topologies_option
@click.pass_context
def bench(
    ctx: click.Context,
    images: int,
    texts: int,
    naive_images: int,
    naive_texts: int,
    redelivery_rounds: int,
    memory_items: int,
    mixed_texts: int,
    chart: Path,
    no_chart: bool,
    no_text: bool,
    workers: int,
    as_json: bool,
    topology_specs: str | None,
) -> None:
    """Ingest throughput: model-only ceiling, end to end, naive baseline, re-delivery and
    memory, in one run (``streamer bench search`` for the query service)."""
    if ctx.invoked_subcommand is not None:
        return
    from streamer.bench.ingest import run_ingest_bench

    sizes = BenchSizes(
        images=images,
        texts=texts,
        naive_images=naive_images,
        naive_texts=naive_texts,
        redelivery_rounds=redelivery_rounds,
        memory_items=memory_items,
        mixed_texts=mixed_texts,
        text=not no_text,
        workers=workers,
    )
    if no_text and not topology_specs:
        topology_specs = "topologies:IMAGE"
    settings = load(topology_specs)
    figures = run_ingest_bench(
        settings,
        sizes,
        topologies=served(settings),
        chart=None if no_chart else chart,
        quiet=as_json,
    )
    if as_json:
        click.echo(json.dumps(figures))


@bench.command("search")
@click.option("--rows", default=20_000, show_default=True, type=click.IntRange(100))
@click.option("--rate", "rate_qps", default=20.0, show_default=True, help="Requests/s, round trip.")
@click.option("--duration", "duration_s", default=10.0, show_default=True)
@click.option("--concurrency", default=200, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of figures.")
def bench_search(
    rows: int, rate_qps: float, duration_s: float, concurrency: int, as_json: bool
) -> None:
    """Query service round trip and coalescing against direct Milvus searches."""
    from streamer.bench.search import run_search_bench

    figures = run_search_bench(
        load(), rows=rows, rate_qps=rate_qps, duration_s=duration_s,
        concurrency=concurrency, quiet=as_json,
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(figures))


@bench.command("sink")
@click.option(
    "--rows",
    default=10_000,
    show_default=True,
    type=click.IntRange(100),
    help="Per size and round.",
)
@click.option("--dim", default=1280, show_default=True, type=click.IntRange(2, 32_768))
@click.option(
    "--sizes",
    default="64,256,1024,4096",
    show_default=True,
    help="Rows per upsert call to measure, comma-separated.",
)
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(1))
@click.option(
    "--milvus-uri",
    default=None,
    help="A Milvus server to measure too (default: the configured Milvus, if not the stack's).",
)
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of figures.")
def bench_sink(
    rows: int, dim: int, sizes: str, rounds: int, milvus_uri: str | None, as_json: bool
) -> None:
    """The Milvus sink alone: rows/s by rows per upsert, on milvus-lite (and a server)."""
    from streamer.bench.sink import run_sink_bench

    try:
        chosen = tuple(int(s) for s in sizes.split(",") if s.strip())
    except ValueError:
        chosen = ()
    if not chosen or min(chosen) < 1:
        raise click.BadParameter(
            f"{sizes!r} is not a list of positive integers", param_hint="--sizes"
        )
    figures = run_sink_bench(
        load(), rows=rows, dim=dim, sizes=chosen, rounds=rounds, milvus_uri=milvus_uri,
        quiet=as_json,
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(figures))


@bench.command("promote")
@click.option("--texts", default=300, show_default=True, type=click.IntRange(10))
@click.option("--rate", "rate_qps", default=20.0, show_default=True, help="Searches/s.")
@click.option("--steady", "steady_s", default=15.0, show_default=True, help="Seconds before.")
@click.option("--after", "after_s", default=15.0, show_default=True, help="Seconds after.")
@click.option(
    "--window", "window_s", default=10.0, show_default=True, help="Seconds after the promote."
)
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of figures.")
def bench_promote(
    texts: int, rate_qps: float, steady_s: float, after_s: float, window_s: float, as_json: bool
) -> None:
    """Search latency while a rollout is promoted, beside the steady latency."""
    from streamer.bench.promote import run_promote_bench

    figures = run_promote_bench(
        load(), texts=texts, rate_qps=rate_qps, steady_s=steady_s, after_s=after_s,
        window_s=window_s, quiet=as_json,
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(figures))


@bench.command("decode")
@click.option("--images", default=48, show_default=True, type=click.IntRange(4))
@click.option(
    "--threads",
    default=None,
    type=click.IntRange(1),
    help="The thread count measured beside one thread (default: the cores this process may use).",
)
@click.option("--rounds", default=5, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of figures.")
def bench_decode(images: int, threads: int | None, rounds: int, as_json: bool) -> None:
    """JPEG decoding and the model's crop, Pillow beside OpenCV, and their embeddings' cosine
    to the model's own preprocessing."""
    from streamer.bench.decode import run_decode_bench

    figures = run_decode_bench(load(), images=images, threads=threads, rounds=rounds, quiet=as_json)
    if as_json:
        click.echo(json.dumps(figures))


@bench.command("produce")
@click.option("--messages", default=100_000, show_default=True, type=click.IntRange(100))
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of figures.")
def bench_produce(messages: int, rounds: int, as_json: bool) -> None:
    """Producer throughput: confluent-kafka (streamer's producer) beside aiokafka, one broker."""
    from streamer.bench.produce import run_produce_bench

    figures = run_produce_bench(load(), messages=messages, rounds=rounds, quiet=as_json)
    if as_json:
        click.echo(json.dumps(figures))


@bench.command("video")
@click.option("--videos", default=12, show_default=True, type=click.IntRange(1))
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of figures.")
def bench_video(videos: int, rounds: int, as_json: bool) -> None:
    """Videos through the video topology in this process, beside the image model alone on as
    many frames."""
    from rich.console import Console

    from streamer.bench.video import run_video_bench

    figures = run_video_bench(load(), videos=videos, rounds=rounds, console=Console(stderr=as_json))
    if as_json:
        click.echo(json.dumps(figures))


@bench.command("trainer")
@click.option("--rounds", default=10, show_default=True, type=click.IntRange(1, 100))
@click.option("--k", "labels", default=10, show_default=True, type=click.IntRange(1, 200),
              help="Labels a round.")  # fmt: skip
@click.option(
    "--classes",
    default="0,1,2,3,4,5,6,7,8,9",
    show_default=True,
    help="The digits trained for, one session each.",
)
@click.option(
    "--photos", default=None, type=click.IntRange(100), help="Only the first N digits (of 1,797)."
)
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of figures.")
def bench_trainer(
    rounds: int, labels: int, classes: str, photos: int | None, as_json: bool
) -> None:
    """The query trainer's loop with an oracle annotator on scikit-learn's digits, embedded by
    the image model: positives found per label against random sampling, and held-out F1."""
    from rich.console import Console

    from streamer.bench.trainer import run_trainer_bench

    try:
        chosen = sorted({int(c) for c in classes.split(",") if c.strip()})
    except ValueError:
        raise click.BadParameter("digits 0 to 9, comma-separated", param_hint="--classes") from None
    if not chosen or not all(0 <= c <= 9 for c in chosen):
        raise click.BadParameter("digits 0 to 9, comma-separated", param_hint="--classes")
    figures = run_trainer_bench(
        load(),
        rounds=rounds,
        k=labels,
        classes=chosen,
        photos=photos,
        console=Console(stderr=as_json),
    )
    if as_json:
        click.echo(json.dumps(figures))
