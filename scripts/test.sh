#!/usr/bin/env bash
# README command 2: install everything, then run the whole suite under Xvfb.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# pytest-xvfb starts a virtual X server; napari needs real OpenGL, which
# QT_QPA_PLATFORM=offscreen does not give here.
exec .venv/bin/python -m pytest "$@"
