"""The built-in topologies. A worker serves :data:`DEFAULT_TOPOLOGIES` unless told otherwise
(``STREAMER_TOPOLOGIES``); users declare their own in their own code."""

from streamer.runner import Topology
from topologies.image import IMAGE
from topologies.text import TEXT

DEFAULT_TOPOLOGIES: tuple[Topology, ...] = (IMAGE, TEXT)

__all__ = ["DEFAULT_TOPOLOGIES", "IMAGE", "TEXT"]
