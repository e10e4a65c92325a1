"""The built-in topologies. A worker serves :data:`DEFAULT_TOPOLOGIES` unless told otherwise
(``STREAMER_TOPOLOGIES``); users declare their own in their own code. :data:`COLOUR` (colour
histograms, no model) is served only when named: ``topologies:COLOUR``. So are :data:`CLIP`
and :data:`CLIP_TEXT` (photos and texts in one CLIP space, the model from
``STREAMER_CLIP_MODEL_DIR``): ``topologies:CLIP_TOPOLOGIES`` names both."""

from streamer.runner import Topology
from topologies.clip import CLIP, CLIP_TEXT, CLIP_TOPOLOGIES
from topologies.colour import COLOUR
from topologies.image import IMAGE
from topologies.text import TEXT
from topologies.video import VIDEO

DEFAULT_TOPOLOGIES: tuple[Topology, ...] = (IMAGE, TEXT, VIDEO)

__all__ = [
    "CLIP",
    "CLIP_TEXT",
    "CLIP_TOPOLOGIES",
    "COLOUR",
    "DEFAULT_TOPOLOGIES",
    "IMAGE",
    "TEXT",
    "VIDEO",
]
