"""The endpoints of a group of worker processes, on the group's own port.

``/metrics`` gathers every process's metrics (read from its own port when scraped) into one
exposition, each sample labelled with its ``process``, and adds ``streamer_worker_process_up``
(1 for a process that answered). ``/healthz`` passes while every process runs and passes its
own, ``/readyz`` once every process passes its own; either names the first process that does
not, and why. An orchestrator probes and scrapes one port per pod, whatever the group's size.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["GroupEndpoints"]


class _Gathered:
    """A collector that yields metric families gathered elsewhere."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


class GroupEndpoints:
    """The group's answers, from its processes' endpoints on ``ports`` (process ``i`` on
    ``ports[i]``); ``running(i)`` says whether process ``i`` is still running."""

    def __init__(
        self, ports: Sequence[int], running: Callable[[int], bool], *, timeout_s: float = 2.0
    ) -> None:
        self.ports = list(ports)
        self.running = running
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(
            max_workers=min(16, len(self.ports)), thread_name_prefix="group-probe"
        )

    def _get(self, index: int, path: str) -> tuple[int, str]:
        """The status and body of process ``index``'s ``path``; 0 and the cause when it could
        not be read."""
        url = f"http://127.0.0.1:{self.ports[index]}{path}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except (OSError, ValueError) as exc:
            return 0, f"not answering ({exc})"

    def passes(self, index: int, path: str) -> bool:
        """Whether process ``index``'s ``path`` answers 200."""
        return self._get(index, path)[0] == 200

    def _each(self, path: str) -> list[tuple[int, str]]:
        return list(self._pool.map(lambda i: self._get(i, path), range(len(self.ports))))

    def exposition(self) -> bytes:
        up = GaugeMetricFamily(
            "streamer_worker_process_up",
            "1 for a process of the group that answered this scrape",
            labels=["process"],
        )
        families: dict[str, Metric] = {}
        for index, (status, body) in enumerate(self._each("/metrics")):
            up.add_metric([str(index)], 1.0 if status == 200 else 0.0)
            if status != 200:
                continue
            for family in text_string_to_metric_families(body):
                gathered = families.get(family.name)
                if gathered is None:
                    gathered = Metric(family.name, family.documentation, family.type, family.unit)
                    families[family.name] = gathered
                gathered.samples += [
                    s._replace(labels={**s.labels, "process": str(index)}) for s in family.samples
                ]
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Gathered([up, *families.values()]))
        return generate_latest(registry)

    def _all(self, path: str, passed: str) -> tuple[bool, str]:
        for index, (status, body) in enumerate(self._each(path)):
            if not self.running(index):
                return False, f"process {index} is not running"
            if status != 200:
                return False, f"process {index}: {body}"
        return True, f"{passed}: {len(self.ports)} processes"

    def live(self) -> tuple[bool, str]:
        return self._all("/healthz", "ok")

    def ready(self) -> tuple[bool, str]:
        return self._all("/readyz", "ready")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
