"""The built-in topologies. A worker serves :data:`DEFAULT_TOPOLOGIES` unless told otherwise
(``STREAMER_TOPOLOGIES``); users declare their own in their own code. :data:`COLOUR` (colour
histograms, no model) is served only when named: ``topologies:COLOUR``."""

from streamer.runner import Topology
from topologies.colour import COLOUR
from topologies.image import IMAGE
from topologies.text import TEXT
from topologies.video import VIDEO

DEFAULT_TOPOLOGIES: tuple[Topology, ...] = (IMAGE, TEXT, VIDEO)

__all__ = ["COLOUR", "DEFAULT_TOPOLOGIES", "IMAGE", "TEXT", "VIDEO"]
