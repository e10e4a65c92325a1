"""What the commands share: settings (with ``--topologies``), the topologies served, KEY=VALUE
pairs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from streamer.config.settings import RuntimeSettings, Settings, load_settings
from streamer.runner.topology import Topology

__all__ = ["load", "pair", "served", "topologies_option"]

F = TypeVar("F", bound=Callable[..., Any])


def topologies_option(fn: F) -> F:
    """``--topologies MODULE:NAME[,...]``: the topologies to serve, in the command and in any
    worker it starts (default: ``STREAMER_TOPOLOGIES``, else the built-in image and text)."""
    return click.option(
        "--topologies",
        "topology_specs",
        metavar="MODULE:NAME[,...]",
        help="Topologies from your code (a Topology or a sequence of them); include "
        "topologies:DEFAULT_TOPOLOGIES to keep the built-in ones. Default: STREAMER_TOPOLOGIES.",
    )(fn)


def load(topology_specs: str | None = None) -> Settings:
    """The settings, with ``--topologies`` (when given) in place of ``STREAMER_TOPOLOGIES``."""
    settings = load_settings()
    if not topology_specs:
        return settings
    runtime = RuntimeSettings.model_validate(
        {**settings.runtime.model_dump(), "topologies": topology_specs}
    )
    return settings.model_copy(update={"runtime": runtime})


def served(settings: Settings, names: Sequence[str] = ()) -> tuple[Topology, ...]:
    """The topologies the settings name, only those in ``names`` when given."""
    from streamer.runner.served import load_topologies, select

    return select(load_topologies(settings.runtime.topologies), names)


def pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"expected KEY=VALUE, got {text!r}")
    return key, value
