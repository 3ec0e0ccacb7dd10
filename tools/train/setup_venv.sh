#!/bin/sh
# tools/train/setup_venv.sh: the Python environment of the training and
# second-oracle tools (never a dependency of the engine): a venv cached at
# ${FM_CACHE:-$HOME/.cache/flashmoe}/venv, created when missing.
# Pinned versions, so a run next month computes the same thing.
set -e
CACHE=${FM_CACHE:-$HOME/.cache/flashmoe}
V=$CACHE/venv
if [ -x "$V/bin/python" ] && "$V/bin/python" -c "import torch, numpy, tokenizers, gguf, transformers" 2>/dev/null; then
	echo "$V"
	exit 0
fi
mkdir -p "$CACHE"
PY=$(command -v python3.11 || command -v python3)
"$PY" -m venv "$V" >&2
"$V/bin/pip" install -q --upgrade pip >&2
"$V/bin/pip" install -q "torch==2.15.0" "numpy<3" "tokenizers==0.22.1" "gguf==0.19.0" "safetensors" "transformers==4.57.6" >&2
echo "$V"
