import pytest

from streamer.models.embedders import ImageEmbedder, TextEmbedder, load_embedder
from streamer.config.settings import FetchSettings
from topologies import IMAGE, TEXT


@pytest.fixture(scope="session")
def image_embedder() -> ImageEmbedder:
    embedder = load_embedder(IMAGE, FetchSettings(), "cpu")
    assert isinstance(embedder, ImageEmbedder)
    return embedder


@pytest.fixture(scope="session")
def text_embedder() -> TextEmbedder:
    embedder = load_embedder(TEXT, FetchSettings(), "cpu")
    assert isinstance(embedder, TextEmbedder)
    return embedder
