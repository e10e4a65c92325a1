"""The ``streamer`` command."""

from __future__ import annotations

import sys

import click

from streamer.cli.bench import bench
from streamer.cli.classifiers import classifiers
from streamer.cli.clients import dlq, produce, search
from streamer.cli.common import load
from streamer.cli.rollout import rollout
from streamer.cli.run import run
from streamer.cli.stack import demo, down, topics, ui, up, worker
from streamer.core.errors import StreamerError

__all__ = ["cli", "main"]


@click.group()
@click.version_option(package_name="streamer", prog_name="streamer")
def cli() -> None:
    """streamer: media references on Kafka become searchable vectors in Milvus."""
    from streamer.config.logs import configure_logging

    runtime = load().runtime
    # a command reports a library's failure itself, as an error it names; the libraries' own
    # lines about it (aiokafka's reconnects, pymilvus's probes) would only be noise here; a
    # worker, which runs on through failures, configures its logs again for itself
    configure_logging(runtime.log_level, runtime.log_format, third_party="CRITICAL")


for command in (
    up,
    down,
    worker,
    produce,
    search,
    run,
    demo,
    topics,
    dlq,
    rollout,
    classifiers,
    ui,
    bench,
):
    cli.add_command(command)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except StreamerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
