"""``streamer rollout``: roll a topology out to another model version."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import click

from streamer.cli.common import load, served, topologies_option

__all__ = ["rollout"]


@click.group()
def rollout() -> None:
    """Roll a topology out to another model version: start, backfill, compare, promote."""


@contextlib.contextmanager
def _rollouts(topology_specs: str | None) -> Iterator[Any]:
    from streamer.rollout.commands import Rollouts

    settings = load(topology_specs)
    rollouts = Rollouts(settings, served(settings))
    try:
        yield rollouts
    finally:
        rollouts.close()


def _echo_state(state: Any) -> None:
    click.echo(
        f"{state.topology}: serving {state.serving}"
        + (f", candidate {state.candidate}" if state.candidate else "")
        + (f", previous {state.previous}" if state.previous else "")
        + f" (epoch {state.epoch})"
    )


@rollout.command("start")
@click.argument("topology")
@topologies_option
@click.option("--model", "version", required=True, help="A model version the topology declares.")
def rollout_start(topology: str, version: str, topology_specs: str | None) -> None:
    """Create the candidate version; ingest writes to both from now on."""
    with _rollouts(topology_specs) as rollouts:
        _echo_state(rollouts.start(topology, version))


@rollout.command("backfill")
@click.argument("topology")
@topologies_option
@click.option("--batch", "batch_size", default=64, show_default=True, type=click.IntRange(1))
def rollout_backfill(topology: str, batch_size: int, topology_specs: str | None) -> None:
    """Re-embed the serving version's assets into the candidate (resumes after a crash)."""
    from rich.progress import Progress

    with _rollouts(topology_specs) as rollouts, Progress() as bar:
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
@topologies_option
@click.option("--json", "as_json", is_flag=True)
def rollout_status(topology: str, as_json: bool, topology_specs: str | None) -> None:
    """The versions of a topology, their row counts and the backfill's progress."""
    with _rollouts(topology_specs) as rollouts:
        status = rollouts.status(topology)
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
@topologies_option
@click.option("--queries", default=20, show_default=True, type=click.IntRange(1))
@click.option("--top-k", "k", default=10, show_default=True, type=click.IntRange(1))
def rollout_compare(topology: str, queries: int, k: int, topology_specs: str | None) -> None:
    """Overlap@k of the serving and the candidate (or previous) version on sample queries."""
    with _rollouts(topology_specs) as rollouts:
        click.echo(json.dumps(rollouts.compare(topology, queries=queries, k=k)))


@rollout.command("promote")
@click.argument("topology")
@topologies_option
@click.option("--force", is_flag=True, help="Promote even if the candidate lacks assets.")
def rollout_promote(topology: str, force: bool, topology_specs: str | None) -> None:
    """Switch the alias to the candidate, atomically; searches move at once."""
    with _rollouts(topology_specs) as rollouts:
        _echo_state(rollouts.promote(topology, force=force))


@rollout.command("rollback")
@click.argument("topology")
@topologies_option
def rollout_rollback(topology: str, topology_specs: str | None) -> None:
    """Point the alias back at the previous version, or abandon an unpromoted rollout."""
    with _rollouts(topology_specs) as rollouts:
        _echo_state(rollouts.rollback(topology))


@rollout.command("retire")
@click.argument("topology")
@topologies_option
@click.option("--version", "version", required=True)
def rollout_retire(topology: str, version: str, topology_specs: str | None) -> None:
    """Drop a version that no longer serves."""
    with _rollouts(topology_specs) as rollouts:
        _echo_state(rollouts.retire(topology, version))
