"""``streamer run --index`` starts a milvus-lite server inside the command: none of its lines,
nor pymilvus's, reach the user's terminal at the default level."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

LIBRARY_LINE = re.compile(r"^\S+ +[A-Z]+ +(pymilvus|grpc|milvus_lite|faiss)\b")


def test_a_run_into_a_local_index_prints_only_its_results(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "STREAMER_STACK_STATE_DIR": str(tmp_path / "no-stack"),
        "STREAMER_BATCH_CALIBRATION_CACHE": str(tmp_path / "calibration.json"),
        "STREAMER_TOPOLOGIES": "topologies:TEXT",
    }
    env.pop("STREAMER_LOG_LEVEL", None)
    command = ["run", "--text", "a cat", "--text", "a dog", "--index", str(tmp_path / "i.db")]
    done = subprocess.run(
        [sys.executable, "-m", "streamer", *command, "--query", "cat", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    library = [line for line in done.stderr.splitlines() if LIBRARY_LINE.match(line)]
    assert not library, done.stderr
