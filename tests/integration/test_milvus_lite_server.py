"""The embedded Milvus keeps every row written by concurrent clients across a restart.

milvus-lite's own server corrupts a collection's write-ahead log when two upserts run at once
(measured: 432 of 2,560 rows left after a restart); the stack's server serialises writes.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient

from streamer.stack.processes import free_port, port_open, spawn, stop, wait_until

pytestmark = pytest.mark.integration

THREADS, BATCHES, ROWS = 8, 15, 16


def start(argv: list[str], logs: Path, port: int) -> object:
    process = spawn("milvus", argv, log_dir=logs, marker="milvus_lite")
    wait_until("milvus", lambda: port_open("127.0.0.1", port), timeout_s=60, process=process)
    return process


def test_concurrent_upserts_survive_a_restart(tmp_path: Path) -> None:
    port = free_port()
    data_dir = str(tmp_path / "milvus")
    argv = [sys.executable, "-m", "streamer.stack.milvus_lite_server",
            "--data-dir", data_dir, "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    server = start(argv, tmp_path, port)
    try:
        client = MilvusClient(uri)
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("uri", DataType.VARCHAR, max_length=512)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=32)
        index = client.prepare_index_params()
        index.add_index("vector", metric_type="COSINE", index_type="FLAT")
        client.create_collection("rows", schema=schema, index_params=index)

        def write(thread: int) -> None:
            own = MilvusClient(uri)
            rng = np.random.default_rng(thread)
            for batch in range(BATCHES):
                rows = [
                    {"id": f"{thread}-{batch}-{j}", "uri": "file:///m/" + "x" * (j * 7),
                     "vector": rng.random(32, dtype=np.float32).tolist()}
                    for j in range(ROWS)
                ]  # fmt: skip
                own.upsert("rows", rows)
            own.close()

        writers = [threading.Thread(target=write, args=(t,)) for t in range(THREADS)]
        for w in writers:
            w.start()
        for w in writers:
            w.join()
        client.close()

        stop(server)  # type: ignore[arg-type]
        assert "stopping" in (tmp_path / "milvus.log").read_text()  # SIGTERM: a clean close
        server = start(argv, tmp_path, port)
        client = MilvusClient(uri)
        client.load_collection("rows")
        count = client.query("rows", filter="", output_fields=["count(*)"])[0]["count(*)"]
        client.close()
        assert count == THREADS * BATCHES * ROWS
        assert "WAL recovery stopped" not in (tmp_path / "milvus.log").read_text()
    finally:
        stop(server)  # type: ignore[arg-type]


def test_keepalive_pings_between_calls_are_accepted(tmp_path: Path) -> None:
    """A client pinging every second between calls (pymilvus: every 10 s) keeps its connection;
    gRPC's default server policy answers the third ping with GOAWAY "too_many_pings"."""
    import grpc

    port = free_port()
    data_dir = str(tmp_path / "milvus")
    argv = [sys.executable, "-m", "streamer.stack.milvus_lite_server",
            "--data-dir", data_dir, "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    server = start(argv, tmp_path, port)
    states: list[grpc.ChannelConnectivity] = []
    channel = grpc.insecure_channel(
        f"127.0.0.1:{port}",
        options=[("grpc.keepalive_time_ms", 1_000), ("grpc.keepalive_permit_without_calls", 1),
                 ("grpc.http2.max_pings_without_data", 0)],
    )  # fmt: skip
    try:
        channel.subscribe(states.append, try_to_connect=True)
        grpc.channel_ready_future(channel).result(timeout=30)
        ready = len(states)
        threading.Event().wait(8)  # eight pings, no calls
        assert states[ready - 1 :] == [grpc.ChannelConnectivity.READY], states
    finally:
        channel.close()
        stop(server)
