"""The query trainer: a linear classifier whose weight vector is itself a query.

Search with it, label what comes back on a scale from -1 to +1, train a few steps, search again
without what was already seen; the labels go where they teach most (the top of the ranking, and
the decision boundary), not over the whole collection. ``learn`` fits, ``classifier`` is what
is saved and scores new vectors, ``session`` runs the loop over any index of vectors (held in
memory, or a collection of the vector store: ``store_index``); ``text_start`` makes an image
query from a text through the image model's ImageNet classes; ``saved`` keeps classifiers in
Redis by name, and which of them are attached to the stream (applied by
:mod:`streamer.ingest.labels`).
"""

from streamer.trainer.classifier import Classifier, ClassifierError
from streamer.trainer.learn import fit, targets_of
from streamer.trainer.saved import SavedClassifiers
from streamer.trainer.session import Candidate, MemoryIndex, TrainingSession, VectorIndex
from streamer.trainer.store_index import StoreIndex
from streamer.trainer.text_start import ClassBridge, TextStart

__all__ = [
    "Candidate",
    "ClassBridge",
    "Classifier",
    "ClassifierError",
    "MemoryIndex",
    "SavedClassifiers",
    "StoreIndex",
    "TextStart",
    "TrainingSession",
    "VectorIndex",
    "fit",
    "targets_of",
]
