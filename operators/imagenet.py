"""The ImageNet classes of a timm image model: their names (timm's own list) and the rows of
the model's classification layer, which live in the space of its pooled features: the space
the ``image`` topology's vectors are in. A class's row, used as a query, ranks photos by that
class's logit."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from operators.timm_model import TimmModel

__all__ = ["imagenet_classes"]


def imagenet_classes(model: TimmModel) -> tuple[list[str], npt.NDArray[np.float32]]:
    """The 1,000 class descriptions ("tabby, tabby cat") and the classifier's weights, one
    row per class, as loaded from ``model``'s own weights."""
    import timm.data

    module: Any = model.load()  # a timm model: its classification layer is a Linear
    weights = module.get_classifier().weight.detach().float().numpy()
    info = timm.data.ImageNetInfo()
    if weights.shape[0] != info.num_classes():
        raise ValueError(
            f"{model.arch} classifies into {weights.shape[0]} classes, not ImageNet's "
            f"{info.num_classes()}"
        )
    names = [info.index_to_description(i) for i in range(info.num_classes())]
    return names, np.asarray(weights, dtype=np.float32)
