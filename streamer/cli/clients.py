"""Commands of a client: publish uploads, search through the query topics, dead letters."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import click

from streamer.cli.common import load, pair, served, topologies_option

__all__ = ["dlq", "produce", "search"]


@click.command()
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
    from streamer.ingest.producer import expand_sources, text_upload, upload_records
    from streamer.kafka.producer import produce

    metadata = dict(pair(m) for m in meta)
    uploads = expand_sources(sources, metadata=metadata) if sources else []
    uploads += [text_upload(t, metadata=metadata) for t in texts]
    uploads += [UploadMessage(id=i, op="delete") for i in delete_ids]
    if asset_id is not None:
        if len(uploads) != 1:
            raise click.BadParameter("--id needs exactly one source or text")
        uploads = [uploads[0].model_copy(update={"id": asset_id})]
    if not uploads:
        raise click.UsageError("nothing to publish: give paths, URIs, --text or --delete")
    settings = load()
    topic = settings.kafka.uploads_topic
    delivered = produce(settings.kafka, upload_records(uploads, topic))
    click.echo(f"published {delivered} message(s) to {topic}")


@click.command()
@click.argument("text", required=False)
@click.option("--image", "image", type=click.Path(dir_okay=False), help="Query by this image.")
@click.option("--video", "video", type=click.Path(dir_okay=False), help="Query by this video.")
@click.option("--uri", help="Query by a media URI the worker can read.")
@click.option("--topology", help="Which topology to search (default: the query's medium's; "
              "a photo may search videos and a video photos).")  # fmt: skip
@click.option("--top-k", default=10, show_default=True, type=click.IntRange(1))
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="Metadata filter; repeat a key to accept any of several values.")  # fmt: skip
@click.option("--version", "model_version", help="Search this model version, not the serving one.")
@click.option("--timeout", "timeout_s", type=float, help="Seconds to wait for the answer.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@topologies_option
def search(
    text: str | None,
    image: str | None,
    video: str | None,
    uri: str | None,
    topology: str | None,
    top_k: int,
    filters: tuple[str, ...],
    model_version: str | None,
    timeout_s: float | None,
    as_json: bool,
    topology_specs: str | None,
) -> None:
    """Search through the query topic: TEXT, --image PATH, --video PATH or --uri URI."""
    from streamer.query.client import SearchClient

    if sum(x is not None for x in (text, image, video, uri)) != 1:
        raise click.UsageError("give exactly one of TEXT, --image, --video or --uri")
    if topology is not None and topology_specs:
        served(load(topology_specs), [topology])  # a name the worker cannot serve fails here
    wanted: dict[str, Any] = {}
    for key, value in (pair(f) for f in filters):
        previous = wanted.get(key)
        wanted[key] = value if previous is None else [*_as_list(previous), value]
    settings = load()

    async def ask() -> Any:
        client = SearchClient(settings.kafka, timeout_s=timeout_s or settings.search.timeout_s)
        async with client:
            return await client.search(
                text, uri=uri, image_path=image, video_path=video, topology=topology, top_k=top_k,
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


@click.group()
def dlq() -> None:
    """Inspect and replay dead letters."""


@dlq.command("list")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True)
def dlq_list(limit: int, as_json: bool) -> None:
    """Show the dead letters: where each came from and why it failed."""
    from streamer.ingest.deadletters import list_letters

    letters = asyncio.run(list_letters(load().kafka, limit=limit))
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
        replay_letters(load().kafka, stage=stage, from_beginning=from_beginning, dry_run=dry_run)
    )
    verb = "would replay" if dry_run else "replayed"
    click.echo(f"{verb} {len(letters)} dead letter(s)")
