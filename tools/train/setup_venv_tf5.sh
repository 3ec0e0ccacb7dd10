#!/bin/sh
# tools/train/setup_venv_tf5.sh: a second venv with transformers 5.x, for the
# models transformers 4.57 lacks (Qwen3.5-MoE, Qwen3_5Moe*) and for
# config.json as 5.x writes it (rope_parameters, num_local_experts), cached at
# ${FM_CACHE:-$HOME/.cache/flashmoe}/venv-tf5 and created when missing.
# Never a dependency of the engine: tests/e2e_convert_hybrid.sh uses it.
#
# It holds transformers and its own dependencies only; torch, numpy,
# safetensors and the rest come from setup_venv.sh's venv (a .pth file puts
# that venv's site-packages after this one's), so torch is not downloaded
# twice. setup_venv.sh's venv keeps transformers 4.57.6: the training tools
# and tests/e2e_convert.sh run as they did. Pinned, so a run next month
# computes the same thing; prints the venv's path.
set -e
CACHE=${FM_CACHE:-$HOME/.cache/flashmoe}
V=$CACHE/venv-tf5
TF=5.25.0
HUB=2.4.0
TOK=0.23.3
ready() {
	[ -x "$V/bin/python" ] && "$V/bin/python" -c "
import sys, torch, numpy, safetensors, transformers, tokenizers, huggingface_hub
sys.exit(transformers.__version__ != '$TF')" 2>/dev/null
}
if ready; then
	echo "$V"
	exit 0
fi
BASE=$(sh "$(dirname "$0")/setup_venv.sh")
mkdir -p "$CACHE"
exec 9>"$CACHE/venv-tf5.lock" # one build at a time; the loser reuses it
command -v flock >/dev/null && flock 9
if ready; then
	echo "$V"
	exit 0
fi
rm -rf "$V"
"$BASE/bin/python" -m venv "$V" >&2
purelib() { "$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
purelib "$BASE" >"$(purelib "$V")/flashmoe-base-venv.pth"
# pip sees the base venv's packages through the .pth file and installs only
# what is missing or pinned otherwise (it cannot remove the base's 4.57.6,
# which this venv's own transformers shadows)
"$V/bin/pip" install -q "transformers==$TF" "huggingface_hub==$HUB" "tokenizers==$TOK" >&2
ready || { echo "setup_venv_tf5: the venv at $V does not import transformers $TF" >&2; exit 1; }
echo "$V"
