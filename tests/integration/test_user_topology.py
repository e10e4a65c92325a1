"""A topology declared in the user's own module, with an operator of its own, runs unchanged in
a local run and through a real worker on the embedded stack: the vectors are the same."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from streamer.ingest.producer import publish
from tests.integration.conftest import Scenario, wait_for
from tests.integration.test_ingest_e2e import image_uploads

pytestmark = pytest.mark.integration

# Written to a temporary folder, outside this repository: an earlier layer of the packaged
# image model and an operator of the user's (a fixed orthonormal projection to 32 dimensions).
USER_MODULE = textwrap.dedent(
    """
    from dataclasses import dataclass

    import numpy as np

    from operators import DecodeImage, Fetch, Normalize
    from operators.image_embed import TimmEmbed
    from operators.preprocess import TimmPreprocess
    from streamer.core.errors import EmbedError
    from streamer.runner import VECTOR, BatchPolicy, BoundCpu, CpuOperator, Topology
    from topologies.image import EFFNET_LITE0


    @dataclass(frozen=True)
    class Orthonormal(CpuOperator):
        name = "project"
        takes = VECTOR
        gives = VECTOR
        error = EmbedError
        dim: int = 32

        def bind(self, context):
            basis, _ = np.linalg.qr(np.random.default_rng(7).standard_normal((192, self.dim)))
            basis = basis.astype(np.float32)
            return BoundCpu(self, lambda vector: vector @ basis)

        def vector_dim(self, upstream):
            return self.dim


    SMALL = Topology(
        name="small",
        media_type="image",
        stages=(
            Fetch(),
            DecodeImage(min_side=EFFNET_LITE0),
            TimmPreprocess(EFFNET_LITE0),
            TimmEmbed(EFFNET_LITE0, layer="blocks.5", batch=BatchPolicy(4, 20)),
            Orthonormal(),
            Normalize(),
        ),
        model_version="small@1",
    )
    """
)


def test_a_user_topology_in_a_worker_and_in_a_local_run(scenario: Scenario) -> None:
    module_dir = scenario.media.parent / "user_code"
    module_dir.mkdir()
    (module_dir / "my_topologies.py").write_text(USER_MODULE)
    pythonpath = os.pathsep.join([str(module_dir), os.environ.get("PYTHONPATH", "")])
    uploads = image_uploads(scenario, 6)
    asyncio.run(publish(scenario.settings.kafka, uploads))
    scenario.start_worker(STREAMER_TOPOLOGIES="my_topologies:SMALL", PYTHONPATH=pythonpath)
    collection = f"{scenario.settings.milvus.collection_prefix}small__small_1"
    wait_for(
        "the user topology's rows",
        lambda: (
            collection in scenario.store.collections(collection)
            and scenario.store.count(collection) == len(uploads)
        ),
    )
    stored = scenario.store.read_rows(collection, [u.id for u in uploads], with_vectors=True)

    proc = subprocess.run(
        [sys.executable, "-m", "streamer", "run", "--topologies", "my_topologies:SMALL",
         "--json", "--vectors", *(u.uri or "" for u in uploads)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": pythonpath, "STREAMER_BATCH_CALIBRATE": "off",
             "STREAMER_STACK_STATE_DIR": str(scenario.media.parent / "no-stack")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    *rows, summary = [json.loads(line) for line in proc.stdout.splitlines()]
    assert (summary["ok"], summary["dim"]) == (len(uploads), 32)
    local = {row["source"]: np.asarray(row["vector"], dtype=np.float32) for row in rows}
    for upload in uploads:
        worker_vector = stored[upload.id].vector
        assert worker_vector is not None and worker_vector.shape == (32,)
        cosine = float(worker_vector @ local[upload.uri or ""])
        assert cosine >= 0.9999, (upload.id, cosine)
