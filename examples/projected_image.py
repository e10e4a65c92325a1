"""A topology of your own, with an operator of your own: photos embedded from an earlier layer
of EfficientNet-Lite0 (block 5, 192-d) and projected to 64 dimensions by a fixed random
projection, an operator written here rather than in streamer's ``operators/``.

Try it on a folder, then serve it (beside the built-in topologies, or instead of them)::

    streamer run --topologies examples/projected_image.py:PROJECTED --topology image_proj ./photos
    STREAMER_TOPOLOGIES=topologies:DEFAULT_TOPOLOGIES,examples/projected_image.py:PROJECTED \\
        streamer worker

A random Gaussian projection keeps distances within a small factor (Johnson-Lindenstrauss):
64 floats a photo instead of 1,280, for a collection that must be small.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from operators import DecodeImage, Fetch, Normalize
from operators.image_embed import TimmEmbed
from operators.preprocess import TimmPreprocess
from streamer.core.errors import EmbedError
from streamer.runner import VECTOR, BatchPolicy, BoundCpu, CpuOperator, Topology, Vector
from streamer.runner.context import Context
from topologies.image import EFFNET_LITE0

__all__ = ["PROJECTED", "RandomProjection"]


@dataclass(frozen=True)
class RandomProjection(CpuOperator[Vector, Vector]):
    """A vector times a fixed ``n x dim`` Gaussian matrix. The matrix comes from ``seed``, so
    every worker, and every local run, projects the same way."""

    name = "project"
    takes = VECTOR
    gives = VECTOR
    error = EmbedError

    dim: int = 64
    seed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def bind(self, context: Context) -> BoundCpu[Vector, Vector]:
        matrices: dict[int, np.ndarray] = {}

        def project(vector: Vector) -> Vector:
            n = int(vector.shape[0])
            with self._lock:
                if n not in matrices:
                    rng = np.random.default_rng(self.seed)
                    matrices[n] = (rng.standard_normal((n, self.dim)) / np.sqrt(self.dim)).astype(
                        np.float32
                    )
            result: Any = vector @ matrices[n]
            return np.asarray(result, dtype=np.float32)

        return BoundCpu(self, project)

    def vector_dim(self, upstream: int | None) -> int:
        return self.dim


PROJECTED = Topology(
    name="image_proj",
    media_type="image",
    stages=(
        Fetch(),
        DecodeImage(min_side=EFFNET_LITE0),
        TimmPreprocess(EFFNET_LITE0),
        TimmEmbed(EFFNET_LITE0, layer="blocks.5", batch=BatchPolicy(16, 50)),
        RandomProjection(dim=64, seed=0),
        Normalize(),
    ),
    model_version="b5-proj64@1",
    metadata_fields=("tenant", "source", "category", "name", "album"),
)
