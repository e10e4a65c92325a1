"""The topologies a process serves, loaded from the user's code by name.

``STREAMER_TOPOLOGIES`` (or ``--topologies``) lists ``module:NAME`` entries, comma-separated;
``NAME`` is a :class:`~streamer.runner.topology.Topology` or a sequence of them, and the module
is an importable module (``mypkg.pipelines``) or the path of a ``.py`` file. The built-ins are
``topologies:DEFAULT_TOPOLOGIES`` (the default), ``topologies:IMAGE`` and ``topologies:TEXT``:
list them beside your own, or leave them out to serve yours instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from streamer.core.errors import ConfigError
from streamer.runner.topology import Topology

__all__ = ["load_topologies", "select"]


def _module(name: str) -> ModuleType:
    if name.endswith(".py") or "/" in name:
        path = Path(name).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"topology module {name!r}: no such file")
        module_name = f"streamer_user_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"topology module {name!r} cannot be loaded")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(
            f"topology module {name!r} cannot be imported ({exc}); is it on PYTHONPATH?"
        ) from exc


def load_topologies(specs: Sequence[str]) -> tuple[Topology, ...]:
    """Every topology the specs name, in order; names must be distinct."""
    found: list[Topology] = []
    for spec in specs:
        module_name, sep, attr = spec.rpartition(":")
        if not sep or not module_name or not attr:
            raise ConfigError(f"topology {spec!r} must be module:NAME")
        module = _module(module_name)
        if not hasattr(module, attr):
            raise ConfigError(f"topology {spec!r}: {module_name} has no {attr!r}")
        value = getattr(module, attr)
        items = [value] if isinstance(value, Topology) else value
        if isinstance(items, str | bytes) or not isinstance(items, Sequence):
            raise ConfigError(f"topology {spec!r} is neither a Topology nor a sequence of them")
        for item in items:
            if not isinstance(item, Topology):
                raise ConfigError(f"topology {spec!r} holds {item!r}, not a Topology")
            found.append(item)
    names = [t.name for t in found]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"topology names repeat: {repeated} (from {list(specs)})")
    return tuple(found)


def select(topologies: Sequence[Topology], names: Sequence[str]) -> tuple[Topology, ...]:
    """The topologies named (all when none is), in the order named."""
    if not names:
        return tuple(topologies)
    known = {t.name: t for t in topologies}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown topology {unknown}; served: {sorted(known)}")
    return tuple(known[n] for n in names)
