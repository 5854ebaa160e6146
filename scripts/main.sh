#!/usr/bin/env bash
# README command 1: the headless main job on the embedded synthetic phantom.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/latentdirs ] || bash scripts/install.sh
exec .venv/bin/latentdirs run --out "${OUT:-runs/demo}" "$@"
