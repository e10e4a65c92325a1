#!/usr/bin/env bash
# A Debian bookworm base image (python3 with venv, CA certificates) made with debootstrap, for a
# machine that reaches a Debian mirror but no image registry: `scripts/container-base.sh [IMAGE]`
# imports it into podman as IMAGE (default localhost/streamer-base:bookworm) and does nothing
# when that image exists already. Needs root (debootstrap). The mirror: $DEBIAN_MIRROR, else the
# first one apt uses here, else deb.debian.org.
set -euo pipefail
IMAGE=${1:-localhost/streamer-base:bookworm}

if podman image exists "$IMAGE"; then
  echo "base: $IMAGE is there"
  exit 0
fi
mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?' /etc/apt/sources.list /etc/apt/sources.list.d 2>/dev/null \
    | awk '{print $2}' | head -1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "base: debootstrap bookworm from $mirror"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
tar -C "$work/rootfs" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "base: imported $IMAGE"
