#!/bin/sh
# tools/llamacpp_venv.sh: llama.cpp (through llama-cpp-python, compiled here
# for this CPU: ~10-15 min on 2 cores) in its own venv, cached at
# ${FM_CACHE:-$HOME/.cache/flashmoe}/llamacpp-venv and created when missing.
# For bench/vs_llamacpp.py only: the engine to compare speed and logits with
# on the same GGUF file; never a dependency of flashmoe. Prints the venv path.
#
# x86-64: not GGML_NATIVE. -march=native on a CPU that lists amx_tile/amx_int8
# compiles ggml's AMX kernels (ggml-cpu/amx, guarded by __AMX_INT8__), and
# those died at run time here (SIGILL at tilezero in ggml_backend_amx_mul_mat,
# Q8_0/Q4_0/K-quant files; an Intel Xeon VM). So each ISA ggml has an option
# for is switched ON exactly when /proc/cpuinfo lists it (AVX2/FMA/F16C,
# AVX-512 with VNNI/VBMI/BF16: the fast paths a user's build would take) and
# AMX is OFF; no -mamx-* flag, no __AMX_INT8__, no AMX code: objdump -d of
# the built libggml-cpu.so has no tilezero/ldtilecfg/tdpb* (checked below).
# The flags are written to $V/flashmoe-build.txt; a venv without that exact
# file (an older native build, another CPU) is stale and is rebuilt.
# LLAMACPP_ISA=avx2: a second venv (llamacpp-venv-avx2) built as if the CPU
# had no AVX-512 and no AVX-VNNI (a Zen 3), for the "AVX2 forced" comparison
# (flashmoe --isa avx2).
set -e
CACHE=${FM_CACHE:-$HOME/.cache/flashmoe}
V=$CACHE/llamacpp-venv
PKG="llama-cpp-python==0.3.36"

cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
if [ "${LLAMACPP_ISA:-}" = avx2 ]; then
	V=$CACHE/llamacpp-venv-avx2
	cpu_flags=$(echo "$cpu_flags" | tr ' ' '\n' | grep -v -e '^avx512' -e '^avx_vnni' | tr '\n' ' ')
	cpu_flags=" $cpu_flags "
fi
on() { # ON if cpuinfo lists every flag named, else OFF
	for f; do
		case $cpu_flags in *" $f "*) ;; *) echo OFF; return ;; esac
	done
	echo ON
}
case $(uname -m) in
x86_64 | amd64)
	avx512=$(on avx512f avx512cd avx512vl avx512dq avx512bw)
	sub() { [ "$avx512" = ON ] && on "$@" || echo OFF; }
	ARGS="-DGGML_NATIVE=OFF -DGGML_SSE42=$(on sse4_2) -DGGML_AVX=$(on avx)"
	ARGS="$ARGS -DGGML_AVX2=$(on avx2) -DGGML_FMA=$(on fma) -DGGML_F16C=$(on f16c)"
	ARGS="$ARGS -DGGML_BMI2=$(on bmi2) -DGGML_AVX_VNNI=$(on avx_vnni) -DGGML_AVX512=$avx512"
	ARGS="$ARGS -DGGML_AVX512_VBMI=$(sub avx512vbmi) -DGGML_AVX512_VNNI=$(sub avx512_vnni)"
	ARGS="$ARGS -DGGML_AVX512_BF16=$(sub avx512_bf16)"
	ARGS="$ARGS -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" ;;
*) ARGS="" ;; # GGML_NATIVE (the default); no AMX outside x86
esac
MARK="$PKG CMAKE_ARGS=$ARGS"

ready() {
	[ -x "$V/bin/python" ] && [ "$(cat "$V/flashmoe-build.txt" 2>/dev/null)" = "$MARK" ] &&
		"$V/bin/python" -c "import llama_cpp, numpy" 2>/dev/null
}
if ready; then
	echo "$V"
	exit 0
fi
mkdir -p "$CACHE"
# one build at a time (parallel `make check` runs); the loser reuses it
exec 9>"$V.lock"
command -v flock >/dev/null && flock 9
if ready; then
	echo "$V"
	exit 0
fi
echo "llamacpp_venv: building $MARK (~10-15 min)" >&2
rm -rf "$V"
/usr/bin/python3 -m venv "$V" >&2
# --no-cache-dir: pip's wheel cache is keyed by the sdist, not by CMAKE_ARGS,
# and would hand back a wheel built with other flags
CMAKE_ARGS="$ARGS" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
	"$V/bin/pip" install -q --no-cache-dir "$PKG" "numpy<3" >&2
if command -v objdump >/dev/null; then
	for so in "$V"/lib/python3*/site-packages/llama_cpp/lib/libggml-cpu*.so; do
		if objdump -d "$so" | grep -qE 'tilezero|ldtilecfg|tdpb'; then
			echo "llamacpp_venv: AMX instructions in $so" >&2
			exit 1
		fi
	done
fi
echo "$MARK" >"$V/flashmoe-build.txt"
echo "$V"
