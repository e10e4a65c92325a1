"""``streamer classifiers``: the classifiers the query trainer saved (in Redis), and which of
them label the stream."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from streamer.cli.common import load

__all__ = ["classifiers"]


@click.group()
def classifiers() -> None:
    """The classifiers the query trainer saved: list, show, export, import, attach to the stream,
    detach, delete."""


@contextlib.contextmanager
def _saved() -> Iterator[Any]:
    from streamer.config.connections import redis_client
    from streamer.trainer import SavedClassifiers

    settings = load()
    client = redis_client(settings.redis)
    try:
        yield SavedClassifiers(client, settings.redis.key_prefix)
    finally:
        client.close()


def _summary(classifier: Any) -> dict[str, Any]:
    data = classifier.to_json()
    data.pop("weights")
    data["trained"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(classifier.trained_at))
    return data


@classifiers.command("list")
@click.option("--topology", default=None, help="Only this topology's.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per classifier.")
def list_(topology: str | None, as_json: bool) -> None:
    """Every saved classifier: its topology, model version, labels and when it was trained."""
    with _saved() as saved:
        found = saved.all(topology)
        attached = set(saved.attached_names())
    if as_json:
        for classifier in found:
            click.echo(
                json.dumps({**_summary(classifier), "attached": classifier.name in attached})
            )
        return
    if not found:
        click.echo("no classifier saved" + (f" for {topology!r}" if topology else ""))
    for c in found:
        click.echo(
            f"{c.name}: {c.topology} ({c.model_version}), {c.dim} weights, {c.labels} labels "
            f"({c.positives} positive), trained {_summary(c)['trained']}"
            + (", attached to the stream" if c.name in attached else "")
        )


@classifiers.command()
@click.argument("name")
def show(name: str) -> None:
    """One classifier, as JSON without its weights."""
    with _saved() as saved:
        click.echo(json.dumps(_summary(saved.get(name)), indent=2))


@classifiers.command("export")
@click.argument("name")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def export(name: str, path: Path) -> None:
    """Write a classifier, weights and all, to a JSON file."""
    with _saved() as saved:
        path.write_text(json.dumps(saved.get(name).to_json()))
    click.echo(f"{name} written to {path}")


@classifiers.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Save over a classifier of the same name.")
def import_(path: Path, replace: bool) -> None:
    """Save a classifier from a JSON file (as export writes it)."""
    from streamer.trainer import Classifier, ClassifierError

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ClassifierError(f"{path}: not JSON: {exc}") from exc
    classifier = Classifier.from_json(data)
    with _saved() as saved:
        saved.save(classifier, replace=replace)
    click.echo(f"{classifier.name} saved ({classifier.topology}, {classifier.model_version})")


@classifiers.command()
@click.argument("name")
def attach(name: str) -> None:
    """Label the stream with a classifier: every row the workers write of its topology and
    model version gets its score and label (metadata, ``media.labels``), from their next look
    (``STREAMER_TRAINER_ATTACHED_REFRESH_S``)."""
    with _saved() as saved:
        classifier = saved.attach(name)
    click.echo(
        f"{name} attached: new rows of {classifier.topology} ({classifier.model_version}) are "
        f"labelled; search them with the filter label:{name}=true"
    )


@classifiers.command()
@click.argument("name")
def detach(name: str) -> None:
    """Stop labelling the stream with a classifier (rows labelled keep their labels)."""
    with _saved() as saved:
        if not saved.detach(name):
            raise click.ClickException(f"{name!r} is not attached")
    click.echo(f"{name} detached")


@classifiers.command()
@click.argument("name")
def delete(name: str) -> None:
    """Delete a saved classifier (detached first)."""
    with _saved() as saved:
        if not saved.delete(name):
            raise click.ClickException(f"no classifier named {name!r}")
    click.echo(f"{name} deleted")
