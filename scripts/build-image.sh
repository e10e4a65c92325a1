#!/usr/bin/env bash
# Build the streamer image: `scripts/build-image.sh [TARGET [TAG]]` (TARGET cpu or gpu; TAG
# default streamer:<version>[-gpu]), with podman, or docker when podman is missing.
#
# Build arguments come from the environment when set: BASE (the base image) and TORCH_INDEX_URL
# (where torch comes from; set it empty for pip's own index). This machine's pip configuration
# (an index mirror, extra indexes and wheel folders on local disk, a CA bundle) is handed to the
# build, local folders mounted read-only, so the image builds where only a mirror is reachable.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:-cpu}
version=$(sed -nE 's/^version = "([^"]+)"/\1/p' pyproject.toml)
suffix=""; [ "$TARGET" = gpu ] && suffix="-gpu"
TAG=${2:-streamer:${version}${suffix}}
ENGINE=${ENGINE:-$(command -v podman || command -v docker)}
PYTHON=${PYTHON:-python3}

args=(build --target "$TARGET" --tag "$TAG" --network host)
[ -n "${BASE:-}" ] && args+=(--build-arg "BASE=$BASE")
[ -n "${TORCH_INDEX_URL+set}" ] && args+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")

mounted=" "
mount_ro() {  # a local path the build reads, at the same place
  case "$mounted" in *" $1 "*) return ;; esac
  [ -e "$1" ] && args+=(--volume "$1:$1:ro") && mounted+="$1 "
}
pip_get() {  # pip's setting $1: its PIP_* variable, else pip's configuration files
  local var
  var="PIP_$(echo "$1" | tr 'a-z-' 'A-Z_')"
  if [ -n "${!var:-}" ]; then echo "${!var}"; return; fi
  "$PYTHON" -m pip config list 2>/dev/null | sed -nE "s/^global\.$1='(.*)'\$/\1/p" | tail -1
}

cert=$(pip_get cert)
if [ -n "$cert" ]; then mount_ro "$cert"; args+=(--build-arg "PIP_CERT=$cert"); fi
index=$(pip_get index-url)
[ -n "$index" ] && args+=(--build-arg "PIP_INDEX_URL=$index")
extra=$(pip_get extra-index-url | tr '\n' ' ' | xargs || true)
if [ -n "$extra" ]; then
  args+=(--build-arg "PIP_EXTRA_INDEX_URL=$extra")
  for url in $extra; do  # file:///x/simple links ../../files: mount /x
    case "$url" in file://*) mount_ro "$(dirname "${url#file://}")" ;; esac
  done
fi
links=$(pip_get find-links | tr '\n' ' ' | xargs || true)
if [ -n "$links" ]; then
  args+=(--build-arg "PIP_FIND_LINKS=$links")
  for path in $links; do mount_ro "${path#file://}"; done
fi
if [ "$(basename "$ENGINE")" = docker ] && [ "$mounted" != " " ]; then
  echo "build-image: docker build cannot mount$mounted; unset pip's local folders" >&2
fi

echo "build-image: $ENGINE ${args[*]} ."
exec "$ENGINE" "${args[@]}" .
