"""The repository's example of a topology with an operator of its own (examples/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamer.demo.samples import transformed_copy, write_photos
from streamer.runner import Source, run
from streamer.runner.served import load_topologies

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "projected_image.py"


def test_an_earlier_layer_and_a_fixed_projection(tmp_path: Path) -> None:
    (projected,) = load_topologies([f"{EXAMPLE}:PROJECTED"])
    assert [s.name for s in projected.stages][-3:] == ["embed", "project", "normalize"]
    photos = write_photos(tmp_path / "photos")
    copies = tmp_path / "copies"
    copies.mkdir()
    for name, path in photos.items():
        (copies / f"{name}.jpg").write_bytes(transformed_copy(path, 0))
    originals = run(projected, [tmp_path / "photos"])
    again = run(projected, [tmp_path / "photos"])
    queries = run(projected, [copies])
    assert originals.summary()["dim"] == 64 and not originals.errors and not queries.errors
    # the projection is fixed: every run (and every worker) gives the same vectors
    assert np.array_equal(originals.vectors(), again.vectors())
    assert np.allclose(np.linalg.norm(originals.vectors(), axis=1), 1.0, atol=1e-5)
    # in 64 dimensions a transformed copy still finds its original first, almost always
    names = [Path(i.source.uri or "").stem for i in originals.items]
    nearest = queries.vectors() @ originals.vectors().T
    found = [names[int(row.argmax())] == Path(q.source.uri or "").stem
             for row, q in zip(nearest, queries.items, strict=True)]  # fmt: skip
    assert sum(found) >= 0.8 * len(found), found
    assert isinstance(originals.items[0].source, Source)
