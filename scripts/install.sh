#!/usr/bin/env bash
# Install everything the project needs on a fresh Debian machine: the apt
# packages for headless Qt, dicom3tools (dciodvfy), ffmpeg, and a virtual
# environment in .venv with the project and its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-xinput0 libxcb-randr0
          libxcb-render-util0 libxcb-shape0 libxcb-cursor0 libxkbcommon-x11-0 libgl1 libegl1
          libfontconfig1 libdbus-1-3 dicom3tools ffmpeg)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# The exact CPU torch lives in a constraints file, not in the package's dependencies (a range
# there), so this script pins what it tests with and a user's own CUDA torch is never replaced.
# torch first: 2.13.0 is the CPU wheel on this machine's disk.
.venv/bin/python -m pip install -q -c scripts/constraints-cpu.txt torch
# [gui]: napari's Qt binding (PyQt6), which the viewer and the napari tests need; the core
# and the CLI do not (tests/test_no_qt.py checks that).
.venv/bin/python -m pip install -q -c scripts/constraints-cpu.txt -e ".[gui,test]"
