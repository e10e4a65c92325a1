"""A plan being bound holds up only the callers of its version."""

from __future__ import annotations

import threading

from streamer.config.settings import FetchSettings
from streamer.runner.context import Context
from streamer.runner.plan import Plan, bind
from streamer.runner.plans import Plans
from streamer.runner.topology import Topology
from streamer.testing import fake_topology

TEXT = fake_topology("text", "text")


def test_plans_bound_stay_at_hand_while_another_version_binds() -> None:
    binding, release = threading.Event(), threading.Event()
    binds: list[str] = []

    def slow_binder(topology: Topology, version: str, context: Context) -> Plan:
        binds.append(version)
        if version == "text@2":
            binding.set()
            assert release.wait(30), "never released"
        return bind(topology, version, context)

    plans = Plans(Context(FetchSettings(), device="cpu"), binder=slow_binder)
    first = plans.get(TEXT)
    warming = threading.Thread(target=plans.get, args=(TEXT, "text@2"))
    waiting = threading.Thread(target=plans.get, args=(TEXT, "text@2"))
    warming.start()
    assert binding.wait(30)
    waiting.start()
    try:
        # while text@2 loads, the serving version and the list of bound plans answer at once
        assert plans.get(TEXT) is first
        assert set(plans.loaded()) == {("text", "text@1")}
    finally:
        release.set()
        warming.join(30)
        waiting.join(30)
    assert set(plans.loaded()) == {("text", "text@1"), ("text", "text@2")}
    assert binds == ["text@1", "text@2"]  # the second caller of text@2 waited, did not bind again
