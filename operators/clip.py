"""Images and texts embedded into one space by a local transformers CLIP model.

:class:`ClipModel` is the declaration: a folder that transformers' ``save_pretrained`` wrote
(the model, its tokenizer and ``preprocessor_config.json``); nothing is fetched from a hub and
nothing loads until a stage that names it is bound. The stages:

- :class:`ClipImagePreprocess`: an image to the model's input by its own image processor's
  configuration (shorter side resized, center crop, the processor's filter), fused as
  :class:`~operators.preprocess.CropResize` does it: a ``uint8`` crop;
- :class:`ClipImageEmbed`: crops to image features (normalised a batch at a time on the
  model's device, by the processor's mean and std);
- :class:`ClipTextEmbed`: texts to text features (the model's tokenizer, truncated to its
  positions).

Both embed stages of a process share one loaded model per folder, device and precision
(through the binding context), so serving photos and their text queries holds the weights
once. Their features are projected into one space: a text finds photos, a photo finds texts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from operators.preprocess import CropResize, Normalizer
from operators.text_embed import sample_sentences, token_counts
from streamer.core.errors import ConfigError, DecodeError, EmbedError
from streamer.runner.device import autocast, resolve_precision, to_device
from streamer.runner.operator import (
    VECTOR,
    BoundCpu,
    BoundModel,
    CpuOperator,
    In,
    LoadedModel,
    ModelOperator,
)

if TYPE_CHECKING:
    from transformers import CLIPModel

    from streamer.runner.context import Context

__all__ = [
    "ClipEmbedder",
    "ClipImageConfig",
    "ClipImageEmbed",
    "ClipImageEmbedder",
    "ClipImagePreprocess",
    "ClipModel",
    "ClipTextEmbed",
    "ClipTextEmbedder",
    "shared_clip",
]

# the filters CropResize can apply, by the name both Pillow and torchvision give them
_FILTERS = {
    f.name: f
    for f in (
        Image.Resampling.BOX,
        Image.Resampling.BILINEAR,
        Image.Resampling.HAMMING,
        Image.Resampling.BICUBIC,
        Image.Resampling.LANCZOS,
    )
}


@dataclass(frozen=True, slots=True)
class ClipImageConfig:
    """What the model's image processor does to a photo: the shorter side resized to
    ``resize_side`` with ``resample``, a ``height`` x ``width`` center crop, then ``mean`` and
    ``std`` (of pixels scaled to 0..1)."""

    resize_side: int
    height: int
    width: int
    resample: Image.Resampling
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def crop_resize(self) -> CropResize:
        return CropResize(self.resize_side, self.height, self.width, self.resample)


@dataclass(frozen=True)
class ClipModel:
    """The CLIP model saved in ``folder`` (a folder, or a function that finds it when the
    model loads) with its tokenizer and image processor configuration."""

    folder: Path | Callable[[], Path]

    def path(self) -> Path:
        """The folder, checked to hold a CLIP model (:class:`ConfigError` naming it if not)."""
        folder = Path(self.folder() if callable(self.folder) else self.folder)
        if not folder.is_dir():
            raise ConfigError(f"CLIP model folder {str(folder)!r} does not exist")
        config = folder / "config.json"
        try:
            model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"{str(folder)!r} is not a CLIP model folder: no readable config.json ({exc})"
            ) from exc
        if model_type != "clip":
            raise ConfigError(
                f"{str(folder)!r} is not a CLIP model folder: its config.json says model_type "
                f"{model_type!r}, not 'clip'"
            )
        return folder

    def load(self) -> CLIPModel:
        """The model, in fp32 (the embed stages choose the precision it runs at)."""
        from transformers import CLIPModel
        from transformers.utils import logging as hf_logging

        folder = self.path()
        hf_logging.disable_progress_bar()
        try:
            model = CLIPModel.from_pretrained(
                str(folder), local_files_only=True, dtype=torch.float32
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(f"CLIP model in {str(folder)!r} cannot be loaded: {exc}") from exc
        return model.eval()

    def tokenizer(self) -> Any:
        """The model's tokenizer, from the folder."""
        from transformers import AutoTokenizer

        folder = self.path()
        try:
            return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"CLIP tokenizer in {str(folder)!r} cannot be loaded: {exc}") from exc

    def image_config(self) -> ClipImageConfig:
        """The image processor's resize, crop, filter, mean and std, from the folder's
        ``preprocessor_config.json``."""
        from transformers import CLIPImageProcessor

        folder = self.path()
        where = f"CLIP image processor in {str(folder)!r}"
        try:
            processor = CLIPImageProcessor.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{where} cannot be loaded: {exc}") from exc
        side = _size_field(processor.size, "shortest_edge")
        height = _size_field(processor.crop_size, "height")
        width = _size_field(processor.crop_size, "width")
        if not (processor.do_resize and processor.do_center_crop) or None in (side, height, width):
            raise ConfigError(
                f"{where}: expected a shortest-edge resize and a center crop, got size "
                f"{processor.size} and crop {processor.crop_size}"
            )
        assert side is not None and height is not None and width is not None
        rescale = float(processor.rescale_factor) if processor.do_rescale else 1.0
        if not processor.do_normalize or abs(rescale * 255.0 - 1.0) > 1e-6:
            raise ConfigError(
                f"{where}: expected pixels scaled to 0..1 and normalised, got do_rescale "
                f"{processor.do_rescale} (factor {processor.rescale_factor}) and do_normalize "
                f"{processor.do_normalize}"
            )
        if height > side or width > side:
            raise ConfigError(f"{where}: crop {height}x{width} is larger than the resize {side}")
        return ClipImageConfig(
            side,
            height,
            width,
            _pillow_filter(processor.resample, where),
            tuple(float(v) for v in processor.image_mean),
            tuple(float(v) for v in processor.image_std),
        )

    def resize_side(self) -> int:
        """The shortest side the processor resizes to before cropping (decoding may stop
        there)."""
        return self.image_config().resize_side


def _size_field(size: Any, key: str) -> int | None:
    """One field of an image processor's size (a ``SizeDict`` or, in older versions, a dict)."""
    value = size.get(key) if isinstance(size, Mapping) else getattr(size, key, None)
    return None if value is None else int(value)


def _pillow_filter(resample: Any, where: str) -> Image.Resampling:
    """Pillow's filter for a processor's ``resample`` (Pillow's number or enum, or
    torchvision's interpolation mode)."""
    name = getattr(resample, "name", None)
    if name is None and isinstance(resample, int):
        name = next((f.name for f in Image.Resampling if f.value == resample), None)
    if name is None or name.upper() not in _FILTERS:
        raise ConfigError(f"{where}: resample {resample!r} is not one of {sorted(_FILTERS)}")
    return _FILTERS[name.upper()]


def _features(output: Any) -> torch.Tensor:
    """The projected features of ``get_image_features``/``get_text_features``: a tensor in
    transformers 4, an output whose ``pooler_output`` holds them in transformers 5."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if not isinstance(pooled, torch.Tensor):
        raise EmbedError(f"CLIP returned {type(output).__name__} without projected features")
    return pooled


class ClipEmbedder:
    """One loaded CLIP model at one placement; what the image and text stages share."""

    def __init__(self, spec: ClipModel, *, device: str = "cpu", precision: str = "auto") -> None:
        self.spec = spec
        self.device = str(device)
        self.torch_device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model = spec.load()
        # transformers wraps ``to`` in a decorator whose type mypy misreads
        self.model.to(self.torch_device)  # type: ignore[arg-type]
        config: Any = self.model.config
        self.dim = int(config.projection_dim)
        self.max_tokens = int(config.text_config.max_position_embeddings)

    @torch.inference_mode()
    def images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Image features of a normalised batch on the model's device."""
        with autocast(self.torch_device, self.precision):
            return _features(self.model.get_image_features(pixel_values=pixels)).float()

    @torch.inference_mode()
    def texts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Text features of a tokenized batch on the model's device."""
        with autocast(self.torch_device, self.precision):
            output = self.model.get_text_features(
                input_ids=input_ids, attention_mask=attention_mask
            )
            return _features(output).float()


class _Tower:
    """One stage's view of the shared model: where it runs, its vectors' length, its calls."""

    def __init__(self, clip: ClipEmbedder) -> None:
        self.clip = clip
        self.dim = clip.dim
        self.calls = 0

    @property
    def device(self) -> str:
        return self.clip.device

    @property
    def precision(self) -> str:
        return self.clip.precision


class ClipImageEmbedder(_Tower):
    """The image stage's loaded model: a batch of crops in, image features out (one row per
    image, not yet unit length)."""

    def __init__(self, clip: ClipEmbedder, config: ClipImageConfig) -> None:
        super().__init__(clip)
        self.config = config
        self.normalizer = Normalizer(config.mean, config.std)

    def __call__(self, batch: Sequence[torch.Tensor]) -> npt.NDArray[np.float32]:
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        # fused crops are uint8: normalised here, a batch at a time, on the model's device
        pixels = self.normalizer(to_device(torch.stack(list(batch)), self.clip.torch_device))
        features = self.clip.images(pixels)
        self.calls += len(batch)
        return features.cpu().numpy()

    def sample_inputs(self, n: int) -> list[torch.Tensor]:
        """Crops shaped like the preprocess stage's (uint8, the model's input size)."""
        generator = torch.Generator().manual_seed(0)
        shape = (3, self.config.height, self.config.width)
        crop = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
        return [crop.clone() for _ in range(n)]


class ClipTextEmbedder(_Tower):
    """The text stage's loaded model: a batch of texts in, text features out (one row per
    text, not yet unit length); it tells the runner each text's token count, so texts of like
    length share a call."""

    def __init__(self, clip: ClipEmbedder, tokenizer: Any) -> None:
        super().__init__(clip)
        self.tokenizer = tokenizer

    def lengths(self, texts: Sequence[str]) -> list[int]:
        return token_counts(self.tokenizer, texts, self.clip.max_tokens)

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encoded = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.clip.max_tokens,
            return_tensors="pt",
        ).to(self.clip.torch_device)
        features = self.clip.texts(encoded["input_ids"], encoded["attention_mask"])
        self.calls += len(texts)
        return features.cpu().numpy()

    def sample_inputs(self, n: int) -> list[str]:
        return sample_sentences(n)


@dataclass(frozen=True)
class _Loader:
    """Loads one CLIP model at one placement; equal loaders are one key of a context's shared
    resources, so the model loads once."""

    model: ClipModel
    device: str
    precision: str

    def __call__(self, _context: Context) -> ClipEmbedder:
        return ClipEmbedder(self.model, device=self.device, precision=self.precision)


def shared_clip(context: Context, model: ClipModel, device: str, precision: str) -> ClipEmbedder:
    """``model`` at ``device`` and ``precision``, loaded once in ``context``."""
    return context.shared(_Loader(model, device, precision))


@dataclass(frozen=True)
class ClipImagePreprocess(CpuOperator[Image.Image, torch.Tensor]):
    """An image to the input of ``model``: its image processor's shortest-side resize and
    center crop, fused (only the kept pixels are resampled), as a ``uint8`` crop; the embed
    stage normalises the batch on its device."""

    name = "preprocess"
    takes = Image.Image
    gives = torch.Tensor
    error = DecodeError

    model: ClipModel

    def bind(self, context: Context) -> BoundCpu[Image.Image, torch.Tensor]:
        return BoundCpu(self, self.model.image_config().crop_resize())


@dataclass(frozen=True)
class _ClipEmbed(ModelOperator[In, npt.NDArray[np.float32]]):
    """An embed stage over one tower of ``model``: the weights loaded once per context and
    placement, shared by the image and text stages (:meth:`tower` makes the stage's view)."""

    gives = VECTOR
    error = EmbedError

    model: ClipModel

    def tower(self, clip: ClipEmbedder) -> LoadedModel[In, npt.NDArray[np.float32]]:
        raise NotImplementedError

    def bind(self, context: Context) -> BoundModel[In, npt.NDArray[np.float32]]:
        return BoundModel(
            self, self.tower(shared_clip(context, self.model, *self.placement(context)))
        )

    def load(self, device: str, precision: str) -> LoadedModel[In, npt.NDArray[np.float32]]:
        return self.tower(ClipEmbedder(self.model, device=device, precision=precision))

    def output_dim(self, model: LoadedModel[Any, Any], upstream: int | None) -> int:
        assert isinstance(model, _Tower)
        return model.dim

    def describe(self) -> str:
        """With the folder its model loads from: a folder found when the model loads (the
        built-ins read it from the environment) is otherwise described by the function that
        finds it, and another model would reuse this one's measurements."""
        return f"{super().describe()} from {str(self.model.path())!r}"


@dataclass(frozen=True)
class ClipImageEmbed(_ClipEmbed[torch.Tensor]):
    """Embed preprocessed images with ``model``'s vision tower and projection."""

    name = "embed"
    takes = torch.Tensor

    def tower(self, clip: ClipEmbedder) -> ClipImageEmbedder:
        return ClipImageEmbedder(clip, self.model.image_config())


@dataclass(frozen=True)
class ClipTextEmbed(_ClipEmbed[str]):
    """Embed texts with ``model``'s text tower and projection, truncated to its positions."""

    name = "embed"
    takes = str

    def tower(self, clip: ClipEmbedder) -> ClipTextEmbedder:
        return ClipTextEmbedder(clip, self.model.tokenizer())
