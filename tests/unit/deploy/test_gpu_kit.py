"""The GPU kit (scripts/gpu_kit.py) carries every runtime package a bare GPU machine lacks.

The machine has no network: a requirement added to streamer and forgotten here would stop
``scripts/gpu-check.sh`` there, in a session whose device time is counted in minutes.
"""

import importlib.util
import tomllib
from pathlib import Path
from types import ModuleType

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[3]


def gpu_kit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_kit", ROOT / "scripts" / "gpu_kit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runtime_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = [*project["dependencies"], *project["optional-dependencies"]["embedded"]]
    return [Requirement(text).name for text in texts]


def test_every_runtime_requirement_is_carried_or_on_the_gpu_machine() -> None:
    kit = gpu_kit()
    top = {kit.norm(name) for name in kit.TOP}
    forgotten = [
        name for name in runtime_requirements() if kit.carried(name) and kit.norm(name) not in top
    ]
    assert forgotten == []


def test_the_closure_holds_the_top_packages_and_leaves_the_machines_own_out() -> None:
    kit = gpu_kit()
    pins = kit.closure("3.12")
    assert {kit.norm(name) for name in kit.TOP} <= set(pins)
    for name in ("torch", "numpy", "faiss-cpu", "nvidia-cudnn-cu13", "opencv-python-headless"):
        assert name not in pins
    # what the carried packages need comes along (faust's and pydantic's own requirements)
    assert {"mode-streaming", "pydantic-core", "yarl", "typing-extensions"} <= set(pins)
