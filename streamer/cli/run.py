"""``streamer run``: a topology on files, folders, URIs or texts, in this process, no server."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from streamer.cli.common import load, served, topologies_option

__all__ = ["run"]


@click.command()
@click.argument("inputs", nargs=-1)
@click.option("--topology", help="The topology to run (default: each input's by its media type).")
@click.option("--version", "version", help="A model version the topology declares.")
@click.option("--text", "texts", multiple=True, help="Inline text to run (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per item, then a summary.")
@click.option("--vectors", is_flag=True, help="With --json: each item's line holds its vector.")
@click.option(
    "--index",
    "index_path",
    type=click.Path(path_type=Path),
    help="Store the vectors in this milvus-lite database (FILE.db), as a worker stores them.",
)
@click.option("--query", help="With --index: a TEXT or an image PATH to search the index for.")
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1))
@topologies_option
def run(
    inputs: tuple[str, ...],
    topology: str | None,
    version: str | None,
    texts: tuple[str, ...],
    as_json: bool,
    vectors: bool,
    index_path: Path | None,
    query: str | None,
    top_k: int,
    topology_specs: str | None,
) -> None:
    """Run a topology in this process on PATHS_OR_URIS (folders and globs expand) and --text,
    with no Kafka, Redis or Milvus server: one row per item (its dimension and norm, or its
    error and stage). Exits 1 when an item failed."""
    from streamer.models.loading import plans_for
    from streamer.runner.local import run_local, with_local_roots

    if query is not None and index_path is None:
        raise click.UsageError("--query searches an index: give --index FILE.db")
    if not inputs and not texts and query is None:
        raise click.UsageError("nothing to run: give paths, URIs or --text (or --query)")
    query_file = [query] if query is not None and Path(query).expanduser().is_file() else []
    settings = with_local_roots(load(topology_specs), [*inputs, *query_file])
    topologies = served(settings)
    plans = plans_for(settings, measure=False)  # calibrated sizes when cached, never measured
    result = run_local(
        topologies, inputs, texts=texts, topology=topology, version=version, settings=settings,
        plans=plans,
    )  # fmt: skip
    summary: dict[str, Any] = result.summary()
    if index_path is not None:

        def ask(source: Any) -> Any:
            return run_local(
                topologies, [source], topology=topology, version=version, settings=settings,
                plans=plans,
            )  # fmt: skip

        summary |= _index(result, index_path, query, ask, top_k)
    if as_json:
        for item in result.items:
            click.echo(json.dumps(item.row(with_vector=vectors)))
        click.echo(json.dumps(summary))
    else:
        _print(result, summary)
    if result.errors:
        sys.exit(1)


def _index(
    result: Any, path: Path, query: str | None, ask: Callable[[Any], Any], top_k: int
) -> dict[str, Any]:
    """Store the run's vectors in the index; search it for ``query`` (a path or a text)."""
    from streamer.runner.index import LocalIndex
    from streamer.runner.operator import Source

    out: dict[str, Any] = {"index": str(path)}
    with LocalIndex(path) as index:
        out["indexed"] = index.add(result)
        if query is None:
            return out
        given = Path(query).expanduser()
        source: Any = given if given.is_file() else Source(text=query)
        asked = ask(source)
        (item,) = asked.items
        if item.vector is None or item.topology is None:
            assert item.error is not None
            raise click.ClickException(f"the query failed at {item.error.stage}: {item.error}")
        hits = index.search(asked.plans[item.topology], item.vector, top_k=top_k)
        out["query"] = {"text" if isinstance(source, Source) else "path": query,
                        "topology": item.topology}  # fmt: skip
        out["hits"] = [
            {"id": h.id, "score": round(h.score, 4), "uri": h.uri, "text": h.text} for h in hits
        ]
    return out


def _print(result: Any, summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{summary['ok']} of {summary['items']} ok in {summary['seconds']} s")
    for column in ("id", "topology", "dim", "norm", "error"):
        table.add_column(column)
    for item in result.items:
        row = item.row()
        error = f"[red]{row['stage']}[/]: {row['error']}" if "error" in row else ""
        table.add_row(
            row["id"], row["topology"] or "", str(row.get("dim", "")),
            str(row.get("norm", "")), error,
        )  # fmt: skip
    console.print(table)
    if "hits" in summary:
        hits = Table(title=f"nearest to {summary['query']}")
        for column in ("#", "id", "score", "uri or text"):
            hits.add_column(column)
        for rank, hit in enumerate(summary["hits"], 1):
            hits.add_row(str(rank), hit["id"], f"{hit['score']:.3f}", hit["uri"] or hit["text"])
        console.print(hits)
