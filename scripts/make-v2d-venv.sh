#!/usr/bin/env bash
# A virtual environment with video2dataset 1.3.0, outside the repo, for benchmarks/bench_v2d.py.
#
#   bash scripts/make-v2d-venv.sh [/work/v2d-venv]
#
# video2dataset pins torch==2.1.2, torchaudio==2.1.2, torchdata==0.7.1, transformers==4.37.1 and numpy<2, and
# imports torch, torchaudio, torchdata, decord, wandb and transformers as soon as the package is imported, so it
# cannot share ophora's environment. Its own pins are installed (Python <= 3.11 has wheels for them; the PyPI torch
# wheel is the CUDA build with its nvidia-* libraries, about 4.5 GB, and runs on CPU), then video2dataset with
# --no-deps and the packages it imports at run time (accelerate, bitsandbytes, scipy are only for captioning and
# are left out). pyarrow<18 and pandas<2.3 keep numpy 1.x working. Not part of ophora's dependencies.
set -euo pipefail
VENV=${1:-/work/v2d-venv}
PY=${PYTHON:-python3}

"$PY" -m venv "$VENV"
PIP=("$VENV/bin/pip" install -q)
nice -n 10 "${PIP[@]}" "torch==2.1.2" "torchaudio==2.1.2" "torchdata==0.7.1" "numpy<2"
nice -n 10 "${PIP[@]}" --no-deps "video2dataset==1.3.0"
nice -n 10 "${PIP[@]}" "numpy<2" "fire>=0.4,<0.6" "requests<3" ffmpeg-python yt-dlp "pyarrow<18" "pandas<2.3" fsspec \
    webdataset webvtt-py wandb tqdm timeout-decorator "scenedetect==0.6.2" "opencv-python-headless<4.12" decord \
    omegaconf einops "transformers==4.37.1" braceexpand langdetect soundfile
"$VENV/bin/python" -c "import video2dataset, torch, scenedetect; print('video2dataset ready: torch', torch.__version__)"
