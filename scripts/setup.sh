#!/usr/bin/env bash
# Create .venv and install streamer with its test tools. Idempotent: a second run with an
# unchanged pyproject.toml only checks a stamp and returns in a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv
STAMP=$VENV/.streamer-setup
want=$(cat pyproject.toml deploy/constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)

# The container test builds and runs the image with podman (runc as its runtime) on a base made
# by debootstrap: install them where apt can. This host's cgroups refuse crun and podman's
# default ulimits, so containers.conf names runc and sets none.
container_tools() {
  local missing=()
  for tool in podman runc debootstrap; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "setup: installing ${missing[*]} (apt)"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null \
        || echo "setup: note: apt-get could not install ${missing[*]}; the container test will skip" >&2
    else
      echo "setup: note: ${missing[*]} missing (not root or no apt); the container test will skip" >&2
    fi
  fi
  local conf=/etc/containers/containers.conf
  if [ "$(id -u)" = 0 ] && command -v podman >/dev/null 2>&1 && ! grep -qs '^default_ulimits' "$conf"; then
    mkdir -p /etc/containers
    printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' >"$conf"
  fi
}
container_tools

# The search page's tests drive Debian's Chromium through its ChromeDriver (Selenium).
browser_tools() {
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    return
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing chromium and chromium-driver (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
      || echo "setup: note: apt-get could not install chromium; the browser tests will skip" >&2
  else
    echo "setup: note: chromium missing (not root or no apt); the browser tests will skip" >&2
  fi
}
browser_tools

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && "$VENV/bin/python" -c "import streamer" 2>/dev/null; then
  echo "setup: .venv is up to date"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# torch first and exactly pinned: on machines that keep these wheels on disk pip takes them
# from there; timm needs torchvision.
"$VENV/bin/python" -m pip install --quiet -c deploy/constraints.txt "torch==2.14.1" "torchvision==0.29.1"
# held to the exact versions the image installs (scripts/lock.sh writes them)
"$VENV/bin/python" -m pip install --quiet -c deploy/constraints.txt -e ".[dev]"

if ! command -v redis-server >/dev/null 2>&1 && ! "$VENV/bin/python" - <<'PY' 2>/dev/null
import redis; redis.Redis(socket_connect_timeout=1).ping()
PY
then
  echo "setup: note: no Redis at 127.0.0.1:6379 and no redis-server on PATH;" \
       "install one (apt-get install redis-server) or set STREAMER_REDIS_URL" >&2
fi
echo "$want" > "$STAMP"
echo "setup: done"
