"""The ``colour`` topology: photos to HSV colour histograms, no model at all.

fetch → decode (JPEGs at reduced size: a histogram needs thousands of pixels, not millions) →
histogram (8 hues, 4 saturations, 4 values, square-rooted, 128-d) → normalize. Version
``hsv-16x4x4@2`` counts twice as many hues (256-d): a second version to roll out to.

It is not among the default topologies (every photo would be decoded once more on every
worker); serve it beside them, or alone::

    STREAMER_TOPOLOGIES=topologies:DEFAULT_TOPOLOGIES,topologies:COLOUR streamer worker
    streamer run --topologies topologies:COLOUR ./photos
"""

from __future__ import annotations

from operators import DecodeImage, Fetch, Normalize
from operators.histogram import HsvHistogram
from streamer.runner import ModelVersion, Topology

__all__ = ["COLOUR"]

COLOUR = Topology(
    name="colour",
    media_type="image",
    stages=(
        Fetch(),
        DecodeImage(min_side=64),
        HsvHistogram(bins=(8, 4, 4)),
        Normalize(),
    ),
    model_version="hsv-8x4x4@1",
    alternatives=(ModelVersion("hsv-16x4x4@2", {"histogram": HsvHistogram(bins=(16, 4, 4))}),),
    metadata_fields=("tenant", "source", "category", "name", "album"),
)
