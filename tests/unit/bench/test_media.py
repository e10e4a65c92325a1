"""Benchmark inputs: texts of mixed length for the cut-by-length comparison."""

import statistics

from streamer.bench.media import bench_texts, mixed_texts


def test_mixed_texts_are_distinct_and_of_widely_mixed_length() -> None:
    texts = mixed_texts(300, seed=5)
    assert len(set(texts)) == 300 and texts == mixed_texts(300, seed=5)
    words = [len(t.split()) - 1 for t in texts]  # the numbered prefix left out
    assert min(words) >= 3 and max(words) <= 203
    assert 12 <= statistics.median(words) <= 30 and max(words) >= 5 * statistics.median(words)
    uniform = [len(t.split()) for t in bench_texts(300, seed=5)]
    assert statistics.pstdev(words) > 4 * statistics.pstdev(uniform)
