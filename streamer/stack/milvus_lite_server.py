"""The embedded stack's Milvus: milvus-lite's gRPC server, made safe for concurrent writers.

milvus-lite's engine is single-writer per collection ("concurrent writes against the same
Collection are not [safe]", its ``adapter/grpc/server.py``), yet its server runs requests on a
thread pool. Two upserts at once (two batches in flight in one worker, or two workers) interleave
their Arrow records in the collection's write-ahead log and race on the sequence counter: the
server answers both, and after a restart the log no longer validates and recovery drops what
it held ("WAL recovery stopped at batch boundary 0 ... Invalid UTF8 sequence"). This server
runs every mutating RPC under one lock; reads (search, query, describe) run concurrently as
before. A real Milvus needs none of this.

It also stops cleanly on SIGTERM (milvus-lite's own ``run_server`` only handles Ctrl-C): it
finishes requests in flight, then closes the database, releasing its directory lock.

Run as ``python -m streamer.stack.milvus_lite_server --data-dir D --host H --port P``.
"""

from __future__ import annotations

import argparse
import functools
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Any

__all__ = ["MUTATING_RPCS", "main", "serialise_writes"]

MUTATING_RPCS = frozenset(
    {
        "AlterAlias",
        "AlterCollection",
        "AlterDatabase",
        "CreateAlias",
        "CreateCollection",
        "CreateDatabase",
        "CreateIndex",
        "CreatePartition",
        "Delete",
        "DropAlias",
        "DropCollection",
        "DropDatabase",
        "DropIndex",
        "DropPartition",
        "Flush",
        "Insert",
        "LoadCollection",
        "LoadPartitions",
        "ManualCompaction",
        "ReleaseCollection",
        "ReleasePartitions",
        "RenameCollection",
        "TruncateCollection",
        "Upsert",
    }
)

_MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # as milvus-lite and Milvus standalone


def serialise_writes(servicer: Any, lock: threading.Lock | None = None) -> Any:
    """Wrap ``servicer``'s mutating RPC methods so that one runs at a time; returns it."""
    guard = lock if lock is not None else threading.Lock()
    for name in MUTATING_RPCS:
        method = getattr(servicer, name, None)
        if method is not None:
            setattr(servicer, name, _under(guard, method))
    return servicer


def _under(lock: threading.Lock, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)

    return locked


#: what a Milvus server lets clients do (its gRPC enforcement policy): keepalive pings every
#: 5 s or more, also between calls. pymilvus pings every 10 s; gRPC's default server policy
#: (one ping in 5 minutes without data) answers a third ping with GOAWAY "too_many_pings", and
#: the reconnect that follows can fail while the server is busy (seen in `streamer bench`).
KEEPALIVE_POLICY = (
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
)


def main(argv: Sequence[str] | None = None) -> None:
    import grpc
    from milvus_lite.adapter.grpc.servicer import MilvusServicer
    from milvus_lite.db import MilvusLite
    from pymilvus.grpc_gen import milvus_pb2_grpc

    parser = argparse.ArgumentParser(prog="milvus_lite_server", description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=19530)
    parser.add_argument("--workers", type=int, default=10, help="gRPC thread pool size")
    args = parser.parse_args(argv)

    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())

    db = MilvusLite(args.data_dir)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.workers),
        options=[
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
            *KEEPALIVE_POLICY,
        ],
    )
    servicer = serialise_writes(MilvusServicer(db))
    milvus_pb2_grpc.add_MilvusServiceServicer_to_server(servicer, server)
    address = f"{args.host}:{args.port}"
    server.add_insecure_port(address)
    server.start()
    print(f"milvus_lite server listening on {address} (data_dir={args.data_dir!r})", flush=True)
    try:
        stopping.wait()
    finally:
        print("milvus_lite server stopping", flush=True)
        server.stop(grace=5).wait()
        db.close()


if __name__ == "__main__":
    main()
