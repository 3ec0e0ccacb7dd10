#!/bin/sh
# tests/e2e_limits.sh: values that are legal to write but wrong to run
# (issue 14, items 5 and 7), each a clear error or warning, never exit 0
# with garbage:
#   - weights that make the logits NaN (valid metadata): an error naming the
#     position, not token 0 forever;
#   - -c beyond the trained context: a warning, as llama.cpp gives;
#   - -c whose KV cache does not fit --mem, or (without --mem) the free RAM:
#     refused with the bytes per token and the context that fits;
#   - a --mem too small for anything (0.5K): the message names the budget;
#   - qwen35moe metadata that contradicts itself (DeltaNet sizes, MTP
#     count, layer pattern, rotary sections, overflowing channels).
# Exit 0 pass, 1 fail.
cd "$(dirname "$0")/.." || exit 1
BIN=${FM_BIN:-build/release/flashmoe}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0

. tests/expect.sh

$BIN gen-tiny --out "$T/m.gguf" --type f32 --layers 2 --hidden 64 --head-dim 16 --experts 4 \
	--experts-used 2 --expert-ff 64 --vocab 300 --ctx 512 >/dev/null || { echo "FAIL gen-tiny"; exit 1; }

# rewrite SRC OUT EDIT: SRC through the project's own GGUF reader/writer
# (tests/reference), with the Python statement EDIT applied to `kvs` (key ->
# (type, value)) and `tens` (name -> [ne, type, bytes]) in between
rewrite() {
	/usr/bin/python3 - "$@" <<'PY'
import sys
sys.path.insert(0, "tests/reference")
import numpy as np
from gguf_reader import GGUFFile
import gguf_writer as w
g = GGUFFile(sys.argv[1])
names = {v: k for k, v in w.VT.items()}
kvs = {}
for k, v in g.metadata.items():
    t = g.value_types[k]
    if t == w.VT["array"]:
        et = "string" if isinstance(v[0], str) else "float32" if isinstance(v[0], float) else "int32"
        kvs[k] = ("array", (et, list(v)))
    else:
        kvs[k] = (names[t], v)
tens = {n: [ti.ne, ti.type_id, bytes(g.tensor_bytes(n))] for n, ti in g.tensors.items()}
exec(sys.argv[3])
w.write_gguf(sys.argv[2], [(k, t, v) for k, (t, v) in kvs.items()],
             [(n, ne, ty, raw) for n, (ne, ty, raw) in tens.items()], alignment=g.alignment)
PY
}

# the output norm's weights set to NaN
rewrite "$T/m.gguf" "$T/nan.gguf" \
	'tens["output_norm.weight"][2] = np.full(64, np.nan, "<f4").tobytes()' ||
	{ echo "FAIL writing nan.gguf"; exit 1; }

expect "NaN logits stop generation" nz "logits at position [0-9]+ are not finite" \
	$BIN generate -m "$T/nan.gguf" --token-ids 1,2,3 -n 4 --temp 0 --ids
expect "NaN logits stop logits" nz "not finite" \
	$BIN logits -m "$T/nan.gguf" --token-ids 1,2,3 --out "$T/l.f32"
expect "-c beyond training warns" 0 "warning: -c 1024 is beyond the 512 tokens" \
	$BIN generate -m "$T/m.gguf" --token-ids 1,2,3 -n 2 --temp 0 --ids -c 1024
expect "-c beyond --mem refused" nz "KV cache of 4000000 tokens \(f32/f32\) needs .* MiB \(.* KiB per token\).*--mem budget; a context of at most [0-9]+ tokens fits" \
	$BIN generate -m "$T/m.gguf" --token-ids 1,2,3 -n 2 --temp 0 --ids -c 4000000 --mem 300M
expect "--mem 0.5K names the budget" nz "--mem 0.0 MiB \(512 bytes\) cannot hold the dense weights" \
	$BIN generate -m "$T/m.gguf" --token-ids 1,2,3 -n 2 --mem 0.5K
# without --mem the limit is the free RAM: 16M tokens of the built-in
# model's F32 KV cache is 64 GiB (skipped where that much is free)
avail=$(awk '/MemAvailable/ { print int($2 / 1048576) }' /proc/meminfo)
if [ "${avail:-0}" -lt 60 ] && [ -f models/brown-moe.gguf ]; then
	expect "-c beyond free RAM refused" nz "KV cache of 16777216 tokens \(f32/f32\) needs 65536.0 MiB.*free RAM; a context of at most [0-9]+ tokens fits" \
		$BIN generate -m models/brown-moe.gguf -p hi -n 2 -c 16777216
else
	echo "skip -c beyond free RAM: ${avail} GiB free"
fi
# hybrid (qwen35moe) metadata that contradicts itself: refused at load
$BIN gen-tiny --arch qwen35moe --out "$T/h.gguf" --layers 4 --hidden 64 --heads 2 --kv-heads 1 \
	--head-dim 32 --experts 4 --experts-used 2 --expert-ff 32 --vocab 300 >/dev/null ||
	{ echo "FAIL gen-tiny qwen35moe"; exit 1; }
hybrid_case() { # name pattern python-edit
	name=$1 pat=$2
	rewrite "$T/h.gguf" "$T/hm.gguf" "$3" ||
		{ echo "FAIL writing $name"; fails=$((fails + 1)); return; }
	expect "qwen35moe $name" nz "$pat" $BIN generate -m "$T/hm.gguf" --token-ids 1,2,3 -n 2
}
hybrid_case "inner_size not value heads x state" "inconsistent DeltaNet sizes" \
	'kvs["qwen35moe.ssm.inner_size"] = ("uint32", 65)'
hybrid_case "key heads not dividing value heads" "inconsistent DeltaNet sizes" \
	'kvs["qwen35moe.ssm.group_count"] = ("uint32", 3)'
hybrid_case "MTP blocks leave no decoder" "nextn_predict_layers = 4 leaves no decoder" \
	'kvs["qwen35moe.nextn_predict_layers"] = ("uint32", 4)'
hybrid_case "attention interval 0" "full_attention_interval' = 0 is out of range" \
	'kvs["qwen35moe.full_attention_interval"] = ("uint32", 0)'
hybrid_case "recurrent_layers too short" "recurrent_layers' must be an array of 4" \
	'kvs["qwen35moe.attention.recurrent_layers"] = ("array", ("int32", [1, 1]))'
hybrid_case "rope sections negative" "dimension_sections'\[0\] = -1 is out of range" \
	'kvs["qwen35moe.rope.dimension_sections"] = ("array", ("int32", [-1, 2, 3, 4]))'
hybrid_case "conv kernel 1000" "conv_kernel = 1000 is out of range" \
	'kvs["qwen35moe.ssm.conv_kernel"] = ("uint32", 1000)'
hybrid_case "DeltaNet channels overflow" "channels, out of range" \
	'kvs["qwen35moe.ssm.state_size"] = ("uint32", 1 << 20); kvs["qwen35moe.ssm.inner_size"] = ("uint32", 1 << 22)'
[ $fails -eq 0 ] && exit 0
exit 1
