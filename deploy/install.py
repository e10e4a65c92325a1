"""Install streamer into the image's virtual environment, in layers that change at different rates.

Run by the Dockerfile with the base image's python3 (3.11 or newer: ``tomllib``):

    install.py torch [INDEX_URL]  torch and torchvision as pinned in pyproject.toml, from INDEX_URL
                                  (PyTorch's CPU index for the cpu target; empty: pip's own index)
    install.py deps               every other runtime dependency (no extras: no embedded stack,
                                  no test tools, no charts) and the build backend
    install.py app SOURCE         streamer itself from SOURCE, offline: no dependency, no build
                                  environment is fetched

A code change rebuilds only the ``app`` layer; a dependency change the ``deps`` layer. Every
install is held to ``constraints.txt`` (the exact versions the tests ran with).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
TORCH = ("torch", "torchvision")


def _name(requirement: str) -> str:
    for stop in "=<>!~[;@ ":
        requirement = requirement.split(stop, 1)[0]
    return requirement.strip().lower()


def requirements(pyproject: Path, *, torch: bool) -> list[str]:
    """The runtime dependencies of pyproject.toml: torch's own or all the others."""
    declared = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [r for r in declared if (_name(r) in TORCH) == torch]


def build_backend(pyproject: Path) -> list[str]:
    return list(tomllib.loads(pyproject.read_text())["build-system"]["requires"])


def pip(*args: str) -> None:
    """pip install, held to the versions in constraints.txt (scripts/lock.sh) when it is there."""
    lock = HERE / "constraints.txt"
    pinned = ["--constraint", str(lock)] if lock.is_file() else []
    command = [sys.executable, "-m", "pip", "install", "--no-compile", *pinned, *args]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def main(argv: list[str]) -> int:
    pyproject = HERE / "pyproject.toml"
    match argv:
        case ["torch", *index]:
            source = ["--index-url", index[0]] if index and index[0] else []
            pip(*source, *requirements(pyproject, torch=True))
        case ["deps"]:
            pip(*requirements(pyproject, torch=False), *build_backend(pyproject))
        case ["app", source]:
            pip("--no-deps", "--no-build-isolation", "--no-index", source)
            subprocess.run([sys.executable, "-m", "pip", "check"], check=True)
        case _:
            print(__doc__, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
