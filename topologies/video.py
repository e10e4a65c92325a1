"""The ``video`` topology: videos to one pooled EfficientNet-Lite0 vector each.

fetch (the video cap, ``STREAMER_VIDEO_MAX_BYTES``) → decode (opencv: a frame every
``STREAMER_VIDEO_FRAME_EVERY_S`` seconds, at most ``STREAMER_VIDEO_MAX_FRAMES``, shrunk by
halves) → preprocess (each frame as the ``image`` topology preprocesses a photo) → embed (the
``image`` topology's model, the same weights in the same process; the mean of the frames' unit
vectors) → normalize. Its vectors live in the photos' space: search it with a photo, or search
photos with a video. With ``STREAMER_VIDEO_SEGMENT_S`` each video also gets a row per segment
(``<id>#s<k>``, with ``segment_of``, ``start_s`` and ``end_s``): a search filtered on
``segment_of`` finds the moment within one video.
"""

from __future__ import annotations

from operators import Normalize
from operators.fetch import FetchVideo
from operators.image_embed import TimmEmbed
from operators.video import DecodeVideo
from operators.video_embed import ClipPreprocess, FrameEmbed
from streamer.runner import BatchPolicy, ModelVersion, Topology
from topologies.image import EFFNET_LITE0, EFFNET_LITE0_B5_SPACE, EFFNET_LITE0_SPACE, IMAGE

__all__ = ["VIDEO"]

_PHOTO_EMBED = IMAGE.stages_for()[3]
assert isinstance(_PHOTO_EMBED, TimmEmbed)

VIDEO = Topology(
    name="video",
    media_type="video",
    stages=(
        FetchVideo(),
        DecodeVideo(min_side=EFFNET_LITE0),
        ClipPreprocess(EFFNET_LITE0),
        # a batch counts videos; their frames go to the model the photo stage's size at a time
        FrameEmbed(_PHOTO_EMBED, batch=BatchPolicy(max_batch_size=4, max_wait_ms=50)),
        Normalize(),
    ),
    model_version="effnet-lite0-frames@1",
    alternatives=(
        ModelVersion(
            "effnet-lite0-b5-frames@2",
            {
                "embed": FrameEmbed(
                    TimmEmbed(EFFNET_LITE0, layer="blocks.5", batch=_PHOTO_EMBED.batch),
                    batch=BatchPolicy(4, 50),
                )
            },
            space=EFFNET_LITE0_B5_SPACE,
        ),
    ),
    # segment_of: a search within one video's segments (STREAMER_VIDEO_SEGMENT_S)
    metadata_fields=("tenant", "source", "category", "name", "album", "segment_of"),
    space=EFFNET_LITE0_SPACE,
)
