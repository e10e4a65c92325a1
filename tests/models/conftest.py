"""The real packaged models, bound once per test session on the CPU."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from streamer.config.settings import FetchSettings
from streamer.runner.context import Context
from streamer.runner.plan import Plan, bind
from streamer.runner.runner import Runner
from topologies import IMAGE, TEXT

CPU = Context(FetchSettings(), device="cpu")


@pytest.fixture(scope="session")
def image_plan() -> Plan:
    return bind(IMAGE, None, CPU)


@pytest.fixture(scope="session")
def text_plan() -> Plan:
    return bind(TEXT, None, CPU)


@pytest.fixture(scope="session")
def runner() -> Iterator[Runner]:
    runner = Runner.with_threads(2, 1, name="test")
    yield runner
    runner.close()


def embed(runner: Runner, plan: Plan, contents: Sequence[bytes | str]) -> np.ndarray:
    """Fetched contents (bytes, or text) through the rest of the plan: one vector each."""
    data = [c.encode() if isinstance(c, str) else c for c in contents]
    vectors = asyncio.run(runner.run(plan, data, first=1))
    return np.stack(vectors)


def prepare(runner: Runner, plan: Plan, contents: Sequence[bytes]) -> list:  # type: ignore[type-arg]
    """What the stages before the model make of fetched contents."""
    return asyncio.run(runner.run(plan, list(contents), first=1, last=plan.model_index))
