"""What binding an operator needs from the process: its settings, the device and precision
asked for, whether image decoding may move to the model's device, and the resources its stages
share (built once per context, on first use)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from streamer.config.settings import FetchSettings, Settings, VideoSettings
from streamer.core.errors import ConfigError

__all__ = ["Context"]

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """The process side of binding. ``device`` and ``precision`` ``auto`` leave the choice to
    each model stage's declaration (itself ``auto``: a GPU when there is one).
    ``decode_on_device``: stages that can (JPEG decode and resize) run fused on the model's
    device; ``auto`` only when that is a GPU, ``on`` on a CPU too (to test that path without
    one), ``off`` never. ``video``: the caps and frame sampling of video stages."""

    fetch: FetchSettings
    device: str = "auto"
    precision: str = "auto"
    decode_on_device: Literal["auto", "on", "off"] = "auto"
    video: VideoSettings = field(default_factory=VideoSettings)
    _shared: dict[Callable[..., Any], Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _making: dict[Callable[..., Any], threading.Lock] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.decode_on_device not in ("auto", "on", "off"):
            raise ConfigError(
                f"decode_on_device must be auto, on or off, not {self.decode_on_device!r}"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> Context:
        runtime = settings.runtime
        return cls(
            settings.fetch,
            runtime.device,
            runtime.precision,
            runtime.decode_on_device,
            video=settings.video,
        )

    def shared(self, factory: Callable[[Context], T]) -> T:
        """``factory(self)``, made once per context: what several stages share (the guarded
        fetcher, a model several stages embed with)."""
        with self._lock:
            if factory in self._shared:
                value: T = self._shared[factory]
                return value
            making = self._making.setdefault(factory, threading.Lock())
        with making:  # one maker per resource; a slow one (a model load) holds up no other
            with self._lock:
                if factory in self._shared:
                    value = self._shared[factory]
                    return value
            value = factory(self)
            with self._lock:
                self._shared[factory] = value
            return value
