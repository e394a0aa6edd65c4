#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine: the Mesa/EGL libraries the headless game renders with,
# then a virtual environment (.venv) with the CPU build of PyTorch and worldsim itself (+ test tools).
set -euo pipefail
cd "$(dirname "$0")"

need=()
for lib in libEGL.so.1 libGL.so.1 libGLU.so.1 libEGL_mesa.so.0; do
  ldconfig -p | grep -q "$lib" || need+=("$lib")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Mesa/EGL (missing: ${need[*]})"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libglu1-mesa >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# the CPU wheel first: a plain `torch` requirement would otherwise pull a multi-GB CUDA build
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/worldsim install-game --quiet  # the game's process runs on NumPy 1 (worldsim/envs/indev/runtime.py)
echo "worldsim is installed in .venv (activate with: . .venv/bin/activate)"
