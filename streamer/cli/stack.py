"""Commands that start things: the embedded stack, a worker, the demo, the contract's topics."""

from __future__ import annotations

import json
import sys

import click

from streamer.cli.common import load, served, topologies_option

__all__ = ["demo", "down", "topics", "up", "worker"]


@click.command()
def up() -> None:
    """Start the embedded stack (Tansu, Redis, milvus-lite) in the background."""
    from streamer.stack.embedded import up as stack_up

    state, started = stack_up(load())
    click.echo("started the embedded stack" if started else "the embedded stack is already up")
    click.echo(f"  kafka   {state.kafka_bootstrap}")
    click.echo(f"  redis   {state.redis_url}")
    click.echo(f"  milvus  {state.milvus_uri}  (data: {state.milvus_data_dir})")


@click.command()
@click.option("--purge", is_flag=True, help="Also delete the Milvus data.")
def down(purge: bool) -> None:
    """Stop the embedded stack; no process is left behind."""
    from streamer.stack.embedded import down as stack_down

    stopped = stack_down(load(), purge=purge)
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@click.command()
@click.option("--topology", "names", multiple=True, help="Serve only these topologies.")
@topologies_option
@click.option(
    "--agents",
    type=click.Choice(["all", "ingest", "search"]),
    default="all",
    show_default=True,
    help="Run both agents, or only ingestion or only search.",
)
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    default=None,
    help="Run this many worker processes in one consumer group, started and stopped as one, "
    "with one metrics port for all (several keep a GPU busy). Default: "
    "STREAMER_WORKER_PROCESSES, else 1.",
)
def worker(
    names: tuple[str, ...], topology_specs: str | None, agents: str, processes: int | None
) -> None:
    """Run the ingestion and query agents (a faust worker) until interrupted."""
    from streamer.worker.shutdown import end_process

    settings = load(topology_specs)
    processes = processes or settings.runtime.worker_processes
    if processes > 1:
        from streamer.config.logs import configure_logging
        from streamer.worker.group import WorkerGroup, spawn_worker

        configure_logging(settings.runtime.log_level, settings.runtime.log_format)
        served(settings, names)  # a topology that does not load fails here, once
        argv = ["--agents", agents, *(a for name in names for a in ("--topology", name))]
        end_process(WorkerGroup(settings, processes, spawn_worker(argv)).run())
        return

    from streamer.worker.assembly import run_worker

    chosen = ("ingest", "search") if agents == "all" else (agents,)
    # an error raised (a bad setting, a crashed agent) is said by the command line as usual
    end_process(run_worker(settings, served(settings, names), chosen))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of results.")
@click.option("--keep-up", is_flag=True, help="Leave the embedded stack running afterwards.")
@topologies_option
def demo(as_json: bool, keep_up: bool, topology_specs: str | None) -> None:
    """The main job, end to end on the embedded stack, with a results table."""
    from streamer.demo.run import run_demo

    settings = load(topology_specs)
    summary = run_demo(settings, keep_up=keep_up, quiet=as_json, topologies=served(settings))
    if as_json:
        click.echo(json.dumps(summary))
    if summary["indexed"] != summary["expected"]:
        sys.exit(1)


@click.group()
def topics() -> None:
    """The contract's topics."""


@topics.command("create")
def topics_create() -> None:
    """Create the missing topics with STREAMER_KAFKA_PARTITIONS partitions (idempotent)."""
    from streamer.kafka.topics import create_topics, topic_names

    kafka = load().kafka
    report = create_topics(kafka)
    for name in topic_names(kafka):
        click.echo(f"{name}: {'created' if name in report.created else 'exists'}")
    click.echo(f"{len(report.created)} created, {len(report.existing)} existed")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@topologies_option
def ui(host: str, port: int, topology_specs: str | None) -> None:
    """The search page: search the vector store by text, photo or asset id, with thumbnails
    and filters; train a classifier from the results."""
    from aiohttp import web

    from streamer.config.logs import configure_logging
    from streamer.ui.app import build_app
    from streamer.ui.search import PageSearch
    from streamer.ui.thumbnails import Thumbnails
    from streamer.ui.trainer import PageTrainer

    settings = load(topology_specs)
    configure_logging(settings.runtime.log_level, settings.runtime.log_format)
    search = PageSearch(settings, served(settings))
    try:
        click.echo(f"search page on http://{host}:{port}/")
        app = build_app(search, Thumbnails(settings.fetch), PageTrainer(search))
        web.run_app(app, host=host, port=port, print=None, handle_signals=True)
    finally:
        search.close()
