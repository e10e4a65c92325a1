#!/usr/bin/env bash
# Create .venv and install streamer with its test tools. Idempotent: a second run with an
# unchanged pyproject.toml only checks a stamp and returns in a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv
STAMP=$VENV/.streamer-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)

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
"$VENV/bin/python" -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
"$VENV/bin/python" -m pip install --quiet -e ".[dev]"

if ! command -v redis-server >/dev/null 2>&1 && ! "$VENV/bin/python" - <<'PY' 2>/dev/null
import redis; redis.Redis(socket_connect_timeout=1).ping()
PY
then
  echo "setup: note: no Redis at 127.0.0.1:6379 and no redis-server on PATH;" \
       "install one (apt-get install redis-server) or set STREAMER_REDIS_URL" >&2
fi
echo "$want" > "$STAMP"
echo "setup: done"
