"""The ``streamer`` command."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from streamer.bench import BenchSizes
from streamer.core.errors import StreamerError
from streamer.config.settings import Settings, load_settings

__all__ = ["main"]


def _settings() -> Settings:
    return load_settings()


@click.group()
def cli() -> None:
    """streamer: media references on Kafka become searchable vectors in Milvus."""
    from streamer.config.logs import configure_logging

    runtime = _settings().runtime
    configure_logging(runtime.log_level, runtime.log_format)


@cli.command()
def up() -> None:
    """Start the embedded stack (Tansu, Redis, milvus-lite) in the background."""
    from streamer.stack.embedded import up as stack_up

    state, started = stack_up(_settings())
    click.echo("started the embedded stack" if started else "the embedded stack is already up")
    click.echo(f"  kafka   {state.kafka_bootstrap}")
    click.echo(f"  redis   {state.redis_url}")
    click.echo(f"  milvus  {state.milvus_uri}  (data: {state.milvus_data_dir})")


@cli.command()
@click.option("--purge", is_flag=True, help="Also delete the Milvus data.")
def down(purge: bool) -> None:
    """Stop the embedded stack; no process is left behind."""
    from streamer.stack.embedded import down as stack_down

    stopped = stack_down(_settings(), purge=purge)
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@cli.command()
@click.option("--topology", "names", multiple=True, help="Serve only these topologies.")
@click.option(
    "--agents",
    type=click.Choice(["all", "ingest", "search"]),
    default="all",
    show_default=True,
    help="Run both agents, or only ingestion or only search.",
)
def worker(names: tuple[str, ...], agents: str) -> None:
    """Run the ingestion and query agents (a faust worker) until interrupted."""
    from streamer.worker.assembly import run_worker

    chosen = ("ingest", "search") if agents == "all" else (agents,)
    run_worker(_settings(), _topologies(names), chosen)


def _topologies(names: tuple[str, ...]) -> tuple[Any, ...]:
    from topologies import DEFAULT_TOPOLOGIES

    if not names:
        return DEFAULT_TOPOLOGIES
    known = {t.name: t for t in DEFAULT_TOPOLOGIES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise click.BadParameter(f"unknown topology {unknown}; known: {sorted(known)}")
    return tuple(known[n] for n in names)


@cli.command()
@click.argument("sources", nargs=-1)
@click.option("--text", "texts", multiple=True, help="Publish inline text (repeatable).")
@click.option("--id", "asset_id", help="Asset id (one source or text only).")
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Metadata for every asset.")
@click.option("--delete", "delete_ids", multiple=True, help="Publish a delete for this asset id.")
def produce(
    sources: tuple[str, ...],
    texts: tuple[str, ...],
    asset_id: str | None,
    meta: tuple[str, ...],
    delete_ids: tuple[str, ...],
) -> None:
    """Publish references to files, folders, globs, URIs, or inline text."""
    from streamer.core.messages import UploadMessage
    from streamer.ingest.producer import expand_sources, publish, text_upload

    metadata = dict(_pair(m) for m in meta)
    uploads = expand_sources(sources, metadata=metadata) if sources else []
    uploads += [text_upload(t, metadata=metadata) for t in texts]
    uploads += [UploadMessage(id=i, op="delete") for i in delete_ids]
    if asset_id is not None:
        if len(uploads) != 1:
            raise click.BadParameter("--id needs exactly one source or text")
        uploads = [uploads[0].model_copy(update={"id": asset_id})]
    if not uploads:
        raise click.UsageError("nothing to publish: give paths, URIs, --text or --delete")
    settings = _settings()
    sent = asyncio.run(publish(settings.kafka, uploads))
    click.echo(f"published {sent} message(s) to {settings.kafka.uploads_topic}")


@cli.command()
@click.argument("text", required=False)
@click.option("--image", "image", type=click.Path(dir_okay=False), help="Query by this image.")
@click.option("--uri", help="Query by a media URI the worker can read.")
@click.option("--topology", help="Which topology to search (inferred for text and images).")
@click.option("--top-k", default=10, show_default=True, type=click.IntRange(1))
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="Metadata filter; repeat a key to accept any of several values.")  # fmt: skip
@click.option("--version", "model_version", help="Search this model version, not the serving one.")
@click.option("--timeout", "timeout_s", type=float, help="Seconds to wait for the answer.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def search(
    text: str | None,
    image: str | None,
    uri: str | None,
    topology: str | None,
    top_k: int,
    filters: tuple[str, ...],
    model_version: str | None,
    timeout_s: float | None,
    as_json: bool,
) -> None:
    """Search through the query topic: TEXT, --image PATH or --uri URI."""
    from streamer.query.client import SearchClient

    if sum(x is not None for x in (text, image, uri)) != 1:
        raise click.UsageError("give exactly one of TEXT, --image or --uri")
    wanted: dict[str, Any] = {}
    for key, value in (_pair(f) for f in filters):
        previous = wanted.get(key)
        wanted[key] = value if previous is None else [*_as_list(previous), value]
    settings = _settings()

    async def ask() -> Any:
        client = SearchClient(settings.kafka, timeout_s=timeout_s or settings.search.timeout_s)
        async with client:
            return await client.search(
                text, uri=uri, image_path=image, topology=topology, top_k=top_k,
                filter=wanted, version=model_version,
            )  # fmt: skip

    result = asyncio.run(ask())
    if as_json:
        click.echo(result.model_dump_json())
    else:
        _print_hits(result)
    if result.error:
        sys.exit(1)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _print_hits(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if result.error:
        console.print(f"[red]error:[/] {result.error}")
        return
    table = Table(
        title=f"{result.topology} · {result.model_version} · {result.took_ms:.1f} ms in the service"
    )
    for column in ("#", "id", "score", "uri", "metadata"):
        table.add_column(column)
    for rank, hit in enumerate(result.hits, 1):
        metadata = ", ".join(f"{k}={v}" for k, v in hit.metadata.items())
        table.add_row(str(rank), hit.id, f"{hit.score:.3f}", hit.uri or "", metadata)
    console.print(table)
    if not result.hits:
        console.print("no hits")


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"expected KEY=VALUE, got {text!r}")
    return key, value


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of results.")
@click.option("--keep-up", is_flag=True, help="Leave the embedded stack running afterwards.")
def demo(as_json: bool, keep_up: bool) -> None:
    """The main job, end to end on the embedded stack, with a results table."""
    from streamer.demo.run import run_demo

    summary = run_demo(_settings(), keep_up=keep_up, quiet=as_json)
    if as_json:
        click.echo(json.dumps(summary))
    if summary["indexed"] != summary["expected"]:
        sys.exit(1)


@cli.group()
def topics() -> None:
    """The contract's topics."""


@topics.command("create")
def topics_create() -> None:
    """Create the missing topics with STREAMER_KAFKA_PARTITIONS partitions (idempotent)."""
    from streamer.config.topics import ensure_topics, topic_names

    kafka = _settings().kafka
    created = asyncio.run(ensure_topics(kafka))
    for name in topic_names(kafka):
        click.echo(f"{name}: {'created' if name in created else 'exists'}")


@cli.group()
def dlq() -> None:
    """Inspect and replay dead letters."""


@dlq.command("list")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True)
def dlq_list(limit: int, as_json: bool) -> None:
    """Show the dead letters: where each came from and why it failed."""
    from streamer.ingest.deadletters import list_letters

    letters = asyncio.run(list_letters(_settings().kafka, limit=limit))
    if as_json:
        for letter in letters:
            click.echo(json.dumps({
                "partition": letter.partition, "offset": letter.offset,
                "key": (letter.key or b"").decode(errors="replace"), "headers": letter.headers,
                "value": letter.value.decode(errors="replace"),
            }))  # fmt: skip
        return
    for letter in letters:
        h = letter.headers
        click.echo(
            f"[{letter.partition}:{letter.offset}] {h.get('x-error-stage')} "
            f"{h.get('x-error-class')} (attempts {h.get('x-attempts')}, from "
            f"{h.get('x-source-topic')}[{h.get('x-source-partition')}]@"
            f"{h.get('x-source-offset')}): {h.get('x-error-message')}"
        )
    click.echo(f"{len(letters)} dead letter(s)")


@dlq.command("replay")
@click.option("--stage", type=click.Choice(["validate", "fetch", "decode", "embed", "sink"]))
@click.option("--from-beginning", is_flag=True, help="Replay letters replayed before, too.")
@click.option("--dry-run", is_flag=True, help="Say what would be replayed.")
def dlq_replay(stage: str | None, from_beginning: bool, dry_run: bool) -> None:
    """Re-publish dead letters to their source topic, after the cause was fixed."""
    from streamer.ingest.deadletters import replay_letters

    letters = asyncio.run(
        replay_letters(
            _settings().kafka, stage=stage, from_beginning=from_beginning, dry_run=dry_run
        )
    )
    verb = "would replay" if dry_run else "replayed"
    click.echo(f"{verb} {len(letters)} dead letter(s)")


@cli.group()
def rollout() -> None:
    """Roll a topology out to another model version: start, backfill, compare, promote."""


def _rollouts() -> Any:
    from streamer.rollout.commands import Rollouts
    from topologies import DEFAULT_TOPOLOGIES

    return Rollouts(_settings(), DEFAULT_TOPOLOGIES)


def _echo_state(state: Any) -> None:
    click.echo(
        f"{state.topology}: serving {state.serving}"
        + (f", candidate {state.candidate}" if state.candidate else "")
        + (f", previous {state.previous}" if state.previous else "")
        + f" (epoch {state.epoch})"
    )


@rollout.command("start")
@click.argument("topology")
@click.option("--model", "version", required=True, help="A model version the topology declares.")
def rollout_start(topology: str, version: str) -> None:
    """Create the candidate version; ingest writes to both from now on."""
    _echo_state(_rollouts().start(topology, version))


@rollout.command("backfill")
@click.argument("topology")
@click.option("--batch", "batch_size", default=64, show_default=True, type=click.IntRange(1))
def rollout_backfill(topology: str, batch_size: int) -> None:
    """Re-embed the serving version's assets into the candidate (resumes after a crash)."""
    from rich.progress import Progress

    rollouts = _rollouts()
    with Progress() as bar:
        task = bar.add_task(f"backfilling {topology}", total=None)

        def show(p: Any) -> None:
            bar.update(task, total=p.total, completed=p.done)

        done = rollouts.backfill(topology, batch_size=batch_size, progress=show)
    click.echo(
        f"backfill {done.done}/{done.total}: {done.embedded} embedded, "
        f"{done.skipped} already current, {done.failed} failed"
    )


@rollout.command("status")
@click.argument("topology")
@click.option("--json", "as_json", is_flag=True)
def rollout_status(topology: str, as_json: bool) -> None:
    """The versions of a topology, their row counts and the backfill's progress."""
    status = _rollouts().status(topology)
    if as_json:
        click.echo(json.dumps(status))
        return
    click.echo(f"{topology}: serving {status['serving']} (epoch {status['epoch']})")
    for version, rows in status["rows"].items():
        role = next(
            (r for r in ("serving", "candidate", "previous") if status[r] == version), "retired?"
        )
        click.echo(f"  {version:<24} {role:<10} {rows} rows")
    if status["backfill"]:
        b = status["backfill"]
        listed = f"{b['done']}/{b['total']}" if b["total"] else "not started"
        click.echo(f"  backfill {listed}")


@rollout.command("compare")
@click.argument("topology")
@click.option("--queries", default=20, show_default=True, type=click.IntRange(1))
@click.option("--top-k", "k", default=10, show_default=True, type=click.IntRange(1))
def rollout_compare(topology: str, queries: int, k: int) -> None:
    """Overlap@k of the serving and the candidate (or previous) version on sample queries."""
    click.echo(json.dumps(_rollouts().compare(topology, queries=queries, k=k)))


@rollout.command("promote")
@click.argument("topology")
@click.option("--force", is_flag=True, help="Promote even if the candidate lacks assets.")
def rollout_promote(topology: str, force: bool) -> None:
    """Switch the alias to the candidate, atomically; searches move at once."""
    _echo_state(_rollouts().promote(topology, force=force))


@rollout.command("rollback")
@click.argument("topology")
def rollout_rollback(topology: str) -> None:
    """Point the alias back at the previous version, or abandon an unpromoted rollout."""
    _echo_state(_rollouts().rollback(topology))


@rollout.command("retire")
@click.argument("topology")
@click.option("--version", "version", required=True)
def rollout_retire(topology: str, version: str) -> None:
    """Drop a version that no longer serves."""
    _echo_state(_rollouts().retire(topology, version))


_SIZES = BenchSizes()


@cli.group(invoke_without_command=True)
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
    "--chart",
    default="streamer-bench.png",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the PNG chart.",
)
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of figures.")
@click.pass_context
def bench(
    ctx: click.Context,
    images: int,
    texts: int,
    naive_images: int,
    naive_texts: int,
    redelivery_rounds: int,
    memory_items: int,
    chart: Path,
    as_json: bool,
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
    )
    figures = run_ingest_bench(_settings(), sizes, chart=chart, quiet=as_json)
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
        _settings(), rows=rows, rate_qps=rate_qps, duration_s=duration_s,
        concurrency=concurrency, quiet=as_json,
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(figures))


def main() -> None:
    try:
        cli(standalone_mode=True)
    except StreamerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
