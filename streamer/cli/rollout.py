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
    workers = status.get("workers", [])
    click.echo(f"  live workers: {len(workers) or 'none reporting'}")
    for w in workers:
        warm = ", ".join(w["warm"]) or "none"
        extra = "".join(f"; loading {v}" for v in w["loading"])
        extra += "".join(f"; {v} failed: {e}" for v, e in w["failed"].items())
        click.echo(f"    {w['worker']:<24} warm: {warm}{extra} ({'+'.join(w['agents'])})")


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
@click.option(
    "--wait",
    "wait_s",
    default=120.0,
    show_default=True,
    type=click.FloatRange(0),
    metavar="SECONDS",
    help="How long to wait for every live worker to hold the candidate warm.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Promote now, even if the candidate lacks assets or live workers do not hold it warm.",
)
def rollout_promote(topology: str, wait_s: float, force: bool, topology_specs: str | None) -> None:
    """Switch the alias to the candidate, atomically, once every live worker holds it warm
    (loaded, calibrated, its shapes run), so the first searches after the switch find their
    model ready; searches move at once."""
    last: list[Any] = []  # the last look at the workers

    def show(readiness: Any) -> None:
        if not last or last[-1].describe() != readiness.describe():  # a line per change
            waiting = "" if readiness.done else "waiting: "
            click.echo(f"{waiting}{readiness.describe()}", err=True)
        last[:] = [readiness]

    with _rollouts(topology_specs) as rollouts:
        state = rollouts.promote(topology, force=force, wait_s=wait_s, progress=show)
    if last and not last[-1].live:
        click.echo("warning: no live worker reports its models; promoted anyway", err=True)
    elif last and not last[-1].done:
        click.echo(f"warning: forced: {last[-1].describe()}", err=True)
    _echo_state(state)


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
