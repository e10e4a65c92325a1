"""The embedded stack's Milvus as a real server (``STREAMER_STACK_MILVUS=server``).

milvus-lite answers from one Python process, and a GPU worker outruns it: measured on an H200
its server took 1,800-2,800 rows/s and bounded four worker processes at 1,459 photos/s. The
``milvus`` package ships a Milvus 2.3 standalone server (the Go binary, an embedded etcd, local
storage): on a 2-core machine it took 8,413 rows/s of 1280-d rows where milvus-lite took 1,719
in the same run (``streamer bench sink``, 1,024 rows a call). It is for measuring and trying on
one machine; in production streamer talks to the Milvus you run.

:func:`milvus_standalone` runs one with its proxy on a given port, every other port it listens
on free (its etcd's too: the embedded etcd takes 2379 and 2380 whatever the template says,
unless given a config of its own), and its data, configuration and logs under one folder.

Run as ``python -m streamer.stack.milvus_server --data-dir D --port P`` (how the stack starts
it): it serves until SIGTERM or SIGINT, then stops the server; it ends too if the server does.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from streamer.core.errors import StackError
from streamer.core.extras import require

__all__ = ["SERVER_PORTS", "Standalone", "etcd_config", "main", "milvus_standalone"]

#: every port the ``milvus`` package's config template names besides the proxy's, so none is
#: left at its fixed default (two servers, or a server beside anything else, would collide)
SERVER_PORTS: Final = (
    "proxy_internal_port",
    "root_coord_port",
    "query_coord_port",
    "query_node_port",
    "index_coord_port",
    "index_node_port",
    "data_coord_port",
    "data_node_port",
)
START_TIMEOUT_S: Final = 180.0


def etcd_config(name: str, peer_port: int, client_port: int, host: str = "127.0.0.1") -> str:
    """The embedded etcd's own configuration: its peer and client URLs on the given ports."""
    peer, client = f"http://{host}:{peer_port}", f"http://{host}:{client_port}"
    return (
        f"name: {name}\nlisten-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
        f"initial-cluster: {name}={peer}\nlisten-client-urls: {client}\n"
        f"advertise-client-urls: {client}\n"
    )


@dataclass(frozen=True, slots=True)
class Standalone:
    """A running server: its URI and its process."""

    uri: str
    process: subprocess.Popen[bytes]

    def alive(self) -> bool:
        return self.process.poll() is None


@contextlib.contextmanager
def milvus_standalone(
    data_dir: Path, port: int, *, timeout_s: float = START_TIMEOUT_S
) -> Iterator[Standalone]:
    """A Milvus standalone server with its proxy on ``port`` and its state in ``data_dir``,
    answering; stopped on leaving."""
    require("milvus", extra="milvus-server", feature="the Milvus standalone server")
    from milvus import MilvusServer

    from streamer.stack.probes import milvus_answers
    from streamer.stack.processes import free_port

    data_dir.mkdir(parents=True, exist_ok=True)
    etcd_peer, etcd_client = free_port(), free_port()
    config = data_dir / "embed-etcd.yaml"
    config.write_text(etcd_config("streamer", etcd_peer, etcd_client))
    server = MilvusServer(
        wait_for_started=False,
        data_dir=str(data_dir),
        etcd_port=etcd_client,
        proxy_port=port,
        **{key: free_port() for key in SERVER_PORTS},
    )
    uri = f"http://127.0.0.1:{port}"
    log = data_dir / "logs" / "milvus-stdout.log"
    previous = os.environ.get("ETCD_CONFIG_PATH")
    os.environ["ETCD_CONFIG_PATH"] = str(config)  # read as etcd.config.path by the server
    try:
        server.start()
    finally:
        if previous is None:
            os.environ.pop("ETCD_CONFIG_PATH", None)
        else:
            os.environ["ETCD_CONFIG_PATH"] = previous
    try:
        deadline = time.monotonic() + timeout_s
        process = server.server_proc
        while not milvus_answers(uri):
            if process is None or process.poll() is not None:
                raise StackError(f"the Milvus server exited while starting; see {log}")
            if time.monotonic() > deadline:
                raise StackError(f"the Milvus server did not answer at {uri} in {timeout_s:.0f} s")
            time.sleep(0.5)
        yield Standalone(uri, process)
    finally:
        server.stop()  # its data stays (and the log, when it failed)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True, help="the proxy's (clients') port")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    with milvus_standalone(args.data_dir, args.port) as server:
        print(f"milvus server answering at {server.uri}", flush=True)
        while not stopping.wait(0.5):
            if not server.alive():
                raise SystemExit(f"the Milvus server exited; see {args.data_dir / 'logs'}")


if __name__ == "__main__":
    main()
