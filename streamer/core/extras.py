"""Optional parts of the installation: the embedded stack, sample photos and charts.

The production image installs streamer without them (``pip install streamer``); a command that
needs one says which extra to install instead of failing on an import deep inside.
"""

from __future__ import annotations

import importlib.util

from streamer.core.errors import ConfigError

__all__ = ["require"]


def require(module: str, *, extra: str, feature: str, instead: str | None = None) -> None:
    """Raise :class:`ConfigError` naming ``extra`` (and ``instead``, what a user may do without
    the feature) when ``module`` is not installed."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"{feature} needs the Python package {module!r}, which this installation lacks: "
            f"pip install 'streamer[{extra}]' (production images leave it out)"
            + (f"; or {instead}" if instead else "")
        )
