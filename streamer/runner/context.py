"""What binding an operator needs from the process: its settings, the device and precision
asked for, and the resources its stages share (built once per context, on first use)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from streamer.config.settings import FetchSettings, Settings

__all__ = ["Context"]

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """The process side of binding. ``device`` and ``precision`` ``auto`` leave the choice to
    each model stage's declaration (itself ``auto``: a GPU when there is one)."""

    fetch: FetchSettings
    device: str = "auto"
    precision: str = "auto"
    _shared: dict[Callable[..., Any], Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> Context:
        return cls(settings.fetch, settings.runtime.device, settings.runtime.precision)

    def shared(self, factory: Callable[[Context], T]) -> T:
        """``factory(self)``, made once per context: what several stages share (the guarded
        fetcher, say)."""
        with self._lock:
            if factory not in self._shared:
                self._shared[factory] = factory(self)
            value: T = self._shared[factory]
            return value
