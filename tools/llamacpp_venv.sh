#!/bin/sh
# tools/llamacpp_venv.sh: llama.cpp (through llama-cpp-python, compiled here
# for this CPU: ~10-15 min on 2 cores) in its own venv, cached at
# ${FM_CACHE:-$HOME/.cache/flashmoe}/llamacpp-venv and created when missing.
# For bench/vs_llamacpp.py only: the engine to compare speed and logits with
# on the same GGUF file; never a dependency of flashmoe. Prints the venv path.
set -e
CACHE=${FM_CACHE:-$HOME/.cache/flashmoe}
V=$CACHE/llamacpp-venv
if [ -x "$V/bin/python" ] && "$V/bin/python" -c "import llama_cpp, numpy" 2>/dev/null; then
	echo "$V"
	exit 0
fi
mkdir -p "$CACHE"
/usr/bin/python3 -m venv "$V" >&2
# GGML_NATIVE (the default): built for the machine it runs on, as a user
# building llama.cpp from source gets it
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$V/bin/pip" install -q "llama-cpp-python==0.3.36" "numpy<3" >&2
echo "$V"
