"""The embedded Milvus server's write lock: one mutating RPC at a time, reads alongside."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from streamer.stack.milvus_lite_server import MUTATING_RPCS, serialise_writes


class OverlapRecorder:
    """A servicer stand-in that records how many calls of each kind ran at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = {"Upsert": 0, "Delete": 0, "Search": 0}
        self.most = {"Upsert": 0, "Delete": 0, "Search": 0, "writes": 0}

    def _call(self, name: str) -> str:
        with self._lock:
            self._running[name] += 1
            self.most[name] = max(self.most[name], self._running[name])
            writes = self._running["Upsert"] + self._running["Delete"]
            self.most["writes"] = max(self.most["writes"], writes)
        time.sleep(0.02)
        with self._lock:
            self._running[name] -= 1
        return name

    def Upsert(self, request: Any, context: Any) -> str:
        return self._call("Upsert")

    def Delete(self, request: Any, context: Any) -> str:
        return self._call("Delete")

    def Search(self, request: Any, context: Any) -> str:
        return self._call("Search")


def hammer(servicer: OverlapRecorder) -> list[str]:
    calls = ["Upsert", "Delete", "Search"] * 8
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda name: getattr(servicer, name)(None, None), calls))


def test_without_the_lock_writes_overlap() -> None:
    # the recorder can see an overlap, so the next test's "1" means something
    plain = OverlapRecorder()
    hammer(plain)
    assert plain.most["writes"] > 1


def test_writes_run_one_at_a_time_and_reads_alongside() -> None:
    servicer = serialise_writes(OverlapRecorder())
    results = hammer(servicer)
    assert results.count("Upsert") == results.count("Delete") == results.count("Search") == 8
    assert servicer.most["writes"] == 1
    assert servicer.most["Search"] > 1


def test_every_write_rpc_of_the_milvus_service_is_known() -> None:
    from milvus_lite.adapter.grpc.servicer import MilvusServicer

    implemented = {n for n in vars(MilvusServicer) if n[:1].isupper()}  # the rest: UNIMPLEMENTED
    assert implemented >= MUTATING_RPCS
    verbs = ("Alter", "Create", "Delete", "Drop", "Flush", "Insert", "Load", "Release", "Rename",
             "Truncate", "Upsert", "Manual")  # fmt: skip
    assert {n for n in implemented if n.startswith(verbs)} <= MUTATING_RPCS
