"""The operator contract: typed, batch-first units of work that a topology composes.

An operator is a *declaration*: a small frozen object, cheap to import and checked when it is
made, saying what it takes, what it gives, where it runs and, for a model, how it is batched
and at which precision. At run time it is *bound* (:meth:`Operator.bind`) to what actually
runs::

    Operator                      declared in a topology, importable, no registry
    ├── CpuOperator               bound to a function of one item; the runner fuses
    │                             neighbouring CPU stages into one task per item (CPU pool)
    └── ModelOperator             bound to a loaded model that takes a micro-batch on its
                                  device; batch policy, device and precision declared

Either way the bound stage keeps the batch contract: a sequence of inputs in, a sequence of
the same length out, each slot the output or the typed error of that one item (its stage, its
asset, its cause). Bad input is data: one corrupt upload never fails its neighbours. A model
that returns another number of results than it was given breaks the contract, and every item
of that call gets an error saying so.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from streamer.core.errors import BatchContractError, ConfigError, StageError

if TYPE_CHECKING:
    from streamer.runner.context import Context

__all__ = [
    "VECTOR",
    "BatchPolicy",
    "BoundCpu",
    "BoundModel",
    "CpuOperator",
    "Embedded",
    "LoadedModel",
    "ModelOperator",
    "Operator",
    "Part",
    "Source",
    "Vector",
    "WithParts",
    "check_batch",
]

In = TypeVar("In")
Out = TypeVar("Out")
In_contra = TypeVar("In_contra", contravariant=True)
Out_co = TypeVar("Out_co", covariant=True)

#: what a topology's last stage gives: one float vector per item
Vector = npt.NDArray[np.float32]
#: the runtime type stages declare for vectors
VECTOR: type = np.ndarray


@dataclass(frozen=True, slots=True)
class Part:
    """The vector of one part of an asset (a segment of a video), stored as a row of its own
    beside the asset's: its id is the asset's with ``#key`` appended, its metadata the asset's
    with ``metadata`` added (a time range, say) and the asset's id under ``segment_of``."""

    key: str
    vector: Vector
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WithParts:
    """What a vector stage may give instead of a bare vector: the asset's vector and those of
    its parts. Stages after it (``Normalize``) treat each vector alike; the runner hands the
    asset's vector on as any other and the parts to those who ask for them."""

    vector: Vector
    parts: tuple[Part, ...]


#: what a vector stage gives: a vector, or one with the vectors of the asset's parts
Embedded = Vector | WithParts


Runs = Literal["cpu", "model"]
Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]


@dataclass(frozen=True, slots=True)
class Source:
    """What a topology's first stage takes: where one asset's content is (a ``uri``) or the
    content itself (inline ``text``)."""

    uri: str | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        if (self.uri is None) == (self.text is None):
            raise ValueError("a Source has a uri or inline text, not both and not neither")

    def describe(self) -> str:
        """A short human label: the uri, or the start of the text."""
        if self.uri is not None:
            return self.uri
        assert self.text is not None
        return repr(self.text[:40] + ("…" if len(self.text) > 40 else ""))


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """Micro-batching of a model stage: at most ``max_batch_size`` items per model call (a
    calibrated size may replace it), and the stream waits at most ``max_wait_ms`` for a batch
    to fill."""

    max_batch_size: int = 32
    max_wait_ms: int = 50

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch_size <= 4096:
            raise ConfigError(f"max_batch_size must be in 1..4096, got {self.max_batch_size}")
        if not 0 <= self.max_wait_ms <= 60_000:
            raise ConfigError(f"max_wait_ms must be in 0..60000, got {self.max_wait_ms}")

    def overridden(self, max_batch_size: int | None, max_wait_ms: int | None) -> BatchPolicy:
        return BatchPolicy(
            max_batch_size=max_batch_size or self.max_batch_size,
            max_wait_ms=self.max_wait_ms if max_wait_ms is None else max_wait_ms,
        )


def check_batch(
    operator: str, items: Sequence[object], results: Sequence[Out] | npt.NDArray[Any]
) -> list[Out]:
    """Return ``results`` as a list (an array: its rows), or raise if the operator broke the
    N-in, N-out contract."""
    if len(results) != len(items):
        raise BatchContractError(operator, len(items), len(results))
    return list(results)


class Operator(ABC, Generic[In, Out]):
    """A declared stage. Subclasses set the class attributes and implement :meth:`bind`."""

    #: the stage's name in a topology; a rollout version replaces a stage by this name
    name: ClassVar[str]
    #: the type of one input and of one output (checked between neighbours when declared)
    takes: ClassVar[type]
    gives: ClassVar[type]
    #: the error a failure of this stage becomes (its class names the dead-letter stage)
    error: ClassVar[type[StageError]]
    #: where it runs: the CPU pool, one item at a time, or a model device, a batch at a time
    runs: ClassVar[Runs]
    #: whether it may give an asset's parts with its vector (:class:`WithParts`): the rows of
    #: the parts are then kept in step with the asset's (replaced, deleted with it)
    gives_parts: ClassVar[bool] = False

    @property
    def stage(self) -> str:
        """The dead-letter stage of this operator's failures (validate, fetch, decode, ...)."""
        return self.error.stage

    def vector_dim(self, upstream: int | None) -> int | None:
        """The length of the vectors this stage gives, knowing the length it takes (``None``
        before any vector). Stages that keep the length need not override it."""
        return upstream

    def baseline(self) -> Operator[In, Out]:
        """The straightforward equivalent of this stage, as a per-item runtime would run it
        (the benchmark's naive baseline); by default the stage itself."""
        return self

    def on_device(self, following: Operator[Any, Any], device: str) -> Operator[Any, Any] | None:
        """The operator that does this stage's work and that of ``following`` (the next stage)
        on the model's ``device``, when that is faster than the CPU pool (a GPU decodes and
        resizes JPEGs in batches); ``None``, the default: both run as declared.

        The planner asks when the context allows it (``decode_on_device``). A fused
        :class:`ModelOperator` gets the batch policy, device and precision of the model stage
        it feeds, so it runs where that model runs, a micro-batch at a time."""
        return None

    @abstractmethod
    def bind(self, context: Context) -> BoundCpu[In, Out] | BoundModel[In, Out]:
        """What runs in this process (may load weights: call it off the event loop)."""


class CpuOperator(Operator[In, Out]):
    """Runs in the CPU pool, one item at a time. Implement :meth:`apply`; override
    :meth:`bind` when the function needs the process's settings or state built once."""

    runs: ClassVar[Runs] = "cpu"

    def apply(self, item: In) -> Out:
        raise NotImplementedError(f"{type(self).__name__} implements neither apply() nor bind()")

    def bind(self, context: Context) -> BoundCpu[In, Out]:
        return BoundCpu(self, self.apply)


class LoadedModel(Protocol[In_contra, Out_co]):
    """A model ready on its device: a batch in, one output (or typed error) per item out."""

    @property
    def device(self) -> str: ...

    @property
    def precision(self) -> str: ...

    def __call__(
        self, batch: Sequence[In_contra], /
    ) -> Sequence[Out_co | StageError] | npt.NDArray[Any]:
        """One output per input, in order (an array: one row per input)."""
        ...

    def sample_inputs(self, n: int) -> list[Any]:
        """``n`` inputs shaped like real ones, to measure the best batch size."""
        ...


@dataclass(frozen=True, kw_only=True)
class ModelOperator(Operator[In, Out]):
    """Runs on a model device, a micro-batch at a time. Subclasses are frozen dataclasses and
    implement :meth:`load` (and :meth:`output_dim` when they give vectors)."""

    runs: ClassVar[Runs] = "model"
    #: a stage that prepares the next model stage's inputs on the device (JPEG decode on the
    #: GPU, say): not calibrated on its own (it takes that stage's batch size), and run on the
    #: device's prepare thread, so one batch is prepared while the model embeds another
    prepares: ClassVar[bool] = False
    #: whether its best batch size is measured when it loads (a stage whose model calls are
    #: sized by another stage's, e.g. video frames chunked like the photo model's batches, is
    #: not)
    calibrates: ClassVar[bool] = True

    batch: BatchPolicy = field(default_factory=BatchPolicy)
    device: Device = "auto"
    precision: Precision = "auto"

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"{self.name}: device must be auto, cpu or cuda, not {self.device!r}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ConfigError(
                f"{self.name}: precision must be auto, fp32, bf16 or fp16, not {self.precision!r}"
            )

    def sized_like(self) -> ModelOperator[Any, Any] | None:
        """The model stage whose model this one calls, when its calls should take that
        stage's batch size (calibrated, pinned or declared) as it runs in a plan bound before:
        the video frames stage calls the photo stage's model, the photos' batch size at a
        time. Its loaded model then gets the size through ``follow_batch_size(size)``."""
        return None

    @abstractmethod
    def load(self, device: str, precision: str) -> LoadedModel[In, Out]:
        """The model on ``device`` (``cpu``, ``cuda``, ``cuda:N``) at ``precision``."""

    def output_dim(self, model: LoadedModel[In, Out], upstream: int | None) -> int | None:
        """The length of the vectors the loaded model gives (``None``: it gives no vectors)."""
        return upstream

    def describe(self) -> str:
        """What identifies the model, for caches of its measurements (not its batch policy)."""
        fields = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("batch", "device", "precision")
        }
        shown = ", ".join(f"{k}={_stable(v)}" for k, v in fields.items())
        return f"{type(self).__module__}.{type(self).__qualname__}({shown})"

    def placement(self, context: Context) -> tuple[str, str]:
        """The device and precision this stage runs at in ``context`` (its declaration, unless
        the process asks for another)."""
        from streamer.runner.device import resolve_device, resolve_precision

        device = resolve_device(self.device if context.device == "auto" else context.device)
        wanted = self.precision if context.precision == "auto" else context.precision
        return device, resolve_precision(wanted, device)

    def bind(self, context: Context) -> BoundModel[In, Out]:
        return BoundModel(self, self.load(*self.placement(context)))


def _stable(value: Any) -> str:
    """A representation that is the same in every process (no addresses of functions)."""
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '?')}.{value.__qualname__}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        inner = ", ".join(
            f"{f.name}={_stable(getattr(value, f.name))}" for f in dataclasses.fields(value)
        )
        return f"{type(value).__qualname__}({inner})"
    return repr(value)


class BoundCpu(Generic[In, Out]):
    """A CPU stage ready to run: :meth:`one` never raises for an item's own failure."""

    def __init__(self, operator: Operator[In, Out], fn: Callable[[In], Out]) -> None:
        self.operator = operator
        self.fn = fn

    def one(self, item: In) -> Out | StageError:
        try:
            return self.fn(item)
        except StageError as exc:
            return exc
        except Exception as exc:  # an unforeseen failure is this item's, never the worker's
            return self.operator.error(f"{self.operator.name}: {type(exc).__name__}: {exc}")

    def __call__(self, items: Sequence[In]) -> list[Out | StageError]:
        return [self.one(item) for item in items]


class BoundModel(Generic[In, Out]):
    """A model stage ready to run. A failing call is retried item by item, so one bad input
    is isolated and its neighbours go on."""

    def __init__(self, operator: ModelOperator[In, Out], model: LoadedModel[In, Out]) -> None:
        self.operator = operator
        self.model = model

    @property
    def device(self) -> str:
        return self.model.device

    @property
    def precision(self) -> str:
        return self.model.precision

    def __call__(self, items: Sequence[In]) -> list[Out | StageError]:
        if not items:
            return []
        operator = self.operator
        try:
            return check_batch(operator.name, items, self.model(items))
        except BatchContractError as exc:
            return [operator.error(f"{operator.name}: {exc}") for _ in items]
        except Exception as exc:  # one bad item must not fail the whole batch
            if len(items) == 1:
                cause = exc.cause if isinstance(exc, StageError) else f"{type(exc).__name__}: {exc}"
                return [operator.error(f"{operator.name}: {cause}")]
            return [result for item in items for result in self([item])]
