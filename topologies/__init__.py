"""Declared pipelines. A worker serves :data:`DEFAULT_TOPOLOGIES` unless told otherwise."""

from topologies.base import BatchPolicy, ModelVersion, TextModelSpec, TimmModelSpec, Topology
from topologies.image import IMAGE
from topologies.text import TEXT

DEFAULT_TOPOLOGIES: tuple[Topology, ...] = (IMAGE, TEXT)

__all__ = [
    "DEFAULT_TOPOLOGIES",
    "IMAGE",
    "TEXT",
    "BatchPolicy",
    "ModelVersion",
    "TextModelSpec",
    "TimmModelSpec",
    "Topology",
]
