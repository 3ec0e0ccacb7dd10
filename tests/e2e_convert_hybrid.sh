#!/bin/sh
# e2e_convert_hybrid.sh: `flashmoe convert` of Qwen3-Next and Qwen3.5-MoE
# (and Qwen3-MoE as transformers 5 saves it) end to end, against Hugging
# Face transformers and against llama.cpp's own converter.
#   - tiny random-init checkpoints written by save_pretrained with the real
#     Qwen3 tokenizer, 6 layers of both kinds, 8 experts of which 2 used,
#     4 DeltaNet value heads over 2 key heads (so Qwen3.5's grouped -> tiled
#     reorder moves something); norms and the DeltaNet's vectors drawn away
#     from their init; weights rounded to the saved dtype first, so the
#     reference sees exactly what is stored:
#       next-f32-mtp           Qwen3NextForCausalLM, transformers 4.57.6 (top-level
#                              rope_theta / partial_rotary_factor), + an MTP block
#       next-bf16-sharded-types  BF16, 3 shards, layer_types of its own, tied
#       next-f32-v5            transformers 5 (rope_parameters)
#       q35-f32-fused-mtp      Qwen3_5MoeForConditionalGeneration (text_config,
#                              model.language_model.*, a vision tower to skip),
#                              experts fused (gate_up_proj / down_proj, as the
#                              released files hold them; transformers reads them
#                              back to the same logits), + an MTP block
#       q35-bf16-sharded       per-expert (as transformers 5.25 saves), 3 shards
#       q35text-f16            Qwen3_5MoeForCausalLM, F16
#       moe-f32-v5             Qwen3MoeForCausalLM from transformers 5
#                              (num_local_experts, rope_parameters)
#   - each converted --type f32: `flashmoe logits` over 128 tokens, batched and
#     token by token (--batch 1), against transformers (float32, eager), per
#     row max |a - b| / max |a|; one also --type bf16 / q8_0
#   - each converted by llama.cpp 0.3.36's convert_hf_to_gguf.py (from the
#     llama-cpp-python sdist, fetched once with pip download and cached): the
#     same tensors (name, type, shape, bytes) as flashmoe's file, the same
#     hyperparameter keys, and flashmoe's logits on it bit-identical to those
#     on its own conversion (F16 sources aside: llama.cpp adds the 1 of a
#     norm in f16 there, so a bound)
#   - --no-mtp; a progress line on a terminal (under script(1)), none otherwise
#   - bad inputs: a missing tensor, a wrong shape, math keys convert does not
#     know (rope scaling, an unknown key, an ungated attention, a sliding
#     window, a layer type): one clear message, exit 1, no output file left
# Exit 0 pass, 1 fail, 77 skip (a venv or the tokenizer cannot be had).
set -u
BIN=${FM_BIN:-build/release/flashmoe}
CACHE=${FM_CACHE:-$HOME/.cache/flashmoe}
V4=$(sh tools/train/setup_venv.sh 2>/dev/null) || { echo "skip: no Python venv"; exit 77; }
V5=$(sh tools/train/setup_venv_tf5.sh 2>/dev/null) || { echo "skip: no transformers 5 venv"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/e2e_convert_hybrid.XXXXXX")
[ -n "${FM_KEEP:-}" ] || trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
t_start=$(date +%s)

# Measured (x86-64 AVX-512, 2 threads, transformers 4.57.6 / 5.25.0, torch
# 2.15 CPU), the worst row of 128, batched / token by token:
#   f32 conversion vs transformers: next-f32-mtp 9.1e-6 / 9.2e-6,
#   next-bf16-sharded-types 6.1e-6 / 6.2e-6, next-f32-v5 1.03e-5 / 1.03e-5,
#   q35-f32-fused-mtp 7.2e-6 / 7.4e-6, q35-bf16-sharded 7.5e-6 / 7.9e-6,
#   q35text-f16 6.6e-6 / 6.5e-6, moe-f32-v5 1.1e-6 / 1.1e-6 (the DeltaNet's
#   recurrence accumulates more rounding than attention alone).
#   bf16 / q8_0 conversions: median row 6.0e-2 / 0.21. These random models
#   flip router choices under any rounding (in transformers itself, rounding
#   only the embedding to bf16 moves the worst row by 1.0 and the median by
#   2.3e-2), so those bounds are loose; that convert's bf16 / q8_0 equal
#   quantize's of the f32 conversion is checked exactly instead.
#   llama.cpp's conversion: every tensor byte-identical, logits identical;
#   q35text-f16 aside: llama.cpp adds the 1 of the norms and takes
#   -exp(A_log) in f16 (tensors within 3.9e-4 of their largest value),
#   flashmoe's logits on its file within 1.07e-2 of those on flashmoe's.
# The bounds sit 2-5x above what was measured.
TOL_F32=5e-5
TOL_BF16=0.15
TOL_Q8_0=0.5
TOL_LC_F16=5e-2
N_IDS=128

# ---- the checkpoints and the reference logits ----
"$V4/bin/python" -c "
import random
random.seed(3)
ids = [random.randrange(0, 151643) for _ in range($N_IDS - 4)] + [151643, 151644, 151645, 151935]
print(','.join(map(str, ids)))" >"$T/ids.txt"
IDS=$(cat "$T/ids.txt")
cat >"$T/make.py" <<'EOF'
import json, os, shutil, sys
sys.path.insert(0, "tools/train")
import common
try:
    common.ensure_npm()
except Exception as e:
    print("cannot get the Qwen3 tokenizer: %s" % e)
    sys.exit(77)
import numpy as np
import torch
import transformers
from safetensors.torch import load_file, save_file

out = sys.argv[1]
ids = [int(x) for x in open(os.path.join(out, "ids.txt")).read().split(",")]
TF5 = int(transformers.__version__.split(".")[0]) >= 5
DT = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def gdn_dims():
    return dict(linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=32,
                linear_value_head_dim=32, linear_conv_kernel_dim=4)


def text_dims(n_layer):
    return dict(vocab_size=common.N_VOCAB, hidden_size=128, num_hidden_layers=n_layer,
                num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                moe_intermediate_size=64, num_experts=8, num_experts_per_tok=2,
                max_position_embeddings=4096, rms_norm_eps=1e-6, initializer_range=0.05,
                bos_token_id=151643, eos_token_id=151645)


def randomise(m, zero_centred):
    """Norms and the DeltaNet's vectors away from their init, so a missing +1,
    a swapped head or a wrong sign shows in the logits."""
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.dim() != 1:
                continue
            if n.endswith("linear_attn.norm.weight") or not zero_centred and n.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))  # a plain weight
            elif n.endswith("norm.weight"):
                p.copy_(0.2 * torch.randn_like(p))  # zero-centred: used as 1 + w
            elif n.endswith("A_log"):
                p.copy_(torch.log(torch.empty_like(p).uniform_(1, 16)))
            elif n.endswith("dt_bias"):
                p.copy_(0.5 * torch.randn_like(p))


def build(name):
    kind, tied = name.split("-")[0], "tied" in name
    if kind == "next":
        from transformers import Qwen3NextConfig, Qwen3NextForCausalLM
        kw = dict(text_dims(6), **gdn_dims(), shared_expert_intermediate_size=96,
                  norm_topk_prob=True, tie_word_embeddings=tied, intermediate_size=256)
        if "types" in name:  # both kinds, not by the interval rule
            kw["layer_types"] = ["linear_attention", "full_attention", "linear_attention",
                                 "linear_attention", "full_attention", "linear_attention"]
        if TF5:
            kw["rope_parameters"] = {"rope_type": "default", "rope_theta": 1e6,
                                     "partial_rotary_factor": 0.25}
        else:
            kw.update(rope_theta=1e6, partial_rotary_factor=0.25)
        return Qwen3NextForCausalLM(Qwen3NextConfig(**kw))
    if kind in ("q35", "q35text"):
        from transformers import (Qwen3_5MoeConfig, Qwen3_5MoeForCausalLM,
                                  Qwen3_5MoeForConditionalGeneration, Qwen3_5MoeTextConfig)
        tc = dict(text_dims(6), **gdn_dims(), shared_expert_intermediate_size=96,
                  tie_word_embeddings=tied,
                  rope_parameters={"rope_type": "default", "rope_theta": 1e7,
                                   "partial_rotary_factor": 0.25, "mrope_section": [2, 1, 1],
                                   "mrope_interleaved": True})
        if kind == "q35text":
            return Qwen3_5MoeForCausalLM(Qwen3_5MoeTextConfig(**tc))
        vc = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=128,
                  num_position_embeddings=16, patch_size=4)
        return Qwen3_5MoeForConditionalGeneration(
            Qwen3_5MoeConfig(text_config=tc, vision_config=vc, tie_word_embeddings=tied))
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM
    kw = dict(text_dims(2), norm_topk_prob=True, tie_word_embeddings=tied, intermediate_size=256)
    if TF5:
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": 1e6}
    else:
        kw["rope_theta"] = 1e6
    return Qwen3MoeForCausalLM(Qwen3MoeConfig(**kw))


def logits_of(m):
    with torch.no_grad():
        return m(torch.tensor([ids])).logits[0].numpy().astype(np.float32)


def make(name):
    dtype = DT[name.split("-")[1]]
    torch.manual_seed(len(name) * 7 + ord(name[0]))
    m = build(name)
    m.config._attn_implementation = "eager"
    m = m.eval()
    randomise(m, not name.startswith("moe"))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.to(dtype).to(torch.float32))
    logits_of(m).tofile(os.path.join(out, name + ".ref.f32"))
    d = os.path.join(out, name)
    kw = {"max_shard_size": "40MB"} if "sharded" in name else {}
    m.to(dtype).save_pretrained(d, **kw)
    shutil.copy(common.tokenizer_json(), d)
    shutil.copy(common.tokenizer_config_json(), d)
    return m, d


def shard_files(d):
    p = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(p):
        idx = json.load(open(p))
        return idx, sorted(set(idx["weight_map"].values()))
    return None, ["model.safetensors"]


def rewrite(d, fn):
    """fn(tensors of one shard) -> tensors, over every shard; the index follows."""
    idx, files = shard_files(d)
    wm = {}
    for f in files:
        t = fn(load_file(os.path.join(d, f)))
        save_file(t, os.path.join(d, f), metadata={"format": "pt"})
        wm.update({k: f for k in t})
    if idx is not None:
        idx["weight_map"] = wm
        json.dump(idx, open(os.path.join(d, "model.safetensors.index.json"), "w"), indent=2)


def fuse_experts(t):
    """per expert -> fused experts.gate_up_proj [E, 2I, H] (gate rows first), down_proj [E, H, I]"""
    out, layers = {}, {}
    for k, v in t.items():
        parts = k.split(".")
        if ".mlp.experts." in k and parts[-3].isdigit():
            layers.setdefault(".".join(parts[:-3]), {})[(int(parts[-3]), parts[-2])] = v
        else:
            out[k] = v
    for base, ex in layers.items():
        n = 1 + max(e for e, _ in ex)
        out[base + ".gate_up_proj"] = torch.stack(
            [torch.cat([ex[(e, "gate_proj")], ex[(e, "up_proj")]]) for e in range(n)]).contiguous()
        out[base + ".down_proj"] = torch.stack([ex[(e, "down_proj")] for e in range(n)]).contiguous()
    return out


def add_mtp(d, m, dtype):
    """An MTP block as the released checkpoints carry one (mtp.*, experts per
    expert): transformers ignores it, flashmoe does not run it; both
    converters keep it."""
    c = m.config.get_text_config()
    H, E, I = c.hidden_size, c.num_experts, c.moe_intermediate_size
    Is, hd = c.shared_expert_intermediate_size, c.head_dim
    q, kv = c.num_attention_heads * hd, c.num_key_value_heads * hd
    g = torch.Generator().manual_seed(5)
    r = lambda *s: (0.05 * torch.randn(*s, generator=g)).to(DT[dtype])
    L = "mtp.layers.0."
    t = {"mtp.fc.weight": r(H, 2 * H), "mtp.pre_fc_norm_embedding.weight": r(H),
         "mtp.pre_fc_norm_hidden.weight": r(H), "mtp.norm.weight": r(H),
         L + "input_layernorm.weight": r(H), L + "post_attention_layernorm.weight": r(H),
         L + "self_attn.q_proj.weight": r(2 * q, H), L + "self_attn.k_proj.weight": r(kv, H),
         L + "self_attn.v_proj.weight": r(kv, H), L + "self_attn.o_proj.weight": r(H, q),
         L + "self_attn.q_norm.weight": r(hd), L + "self_attn.k_norm.weight": r(hd),
         L + "mlp.gate.weight": r(E, H), L + "mlp.shared_expert_gate.weight": r(1, H),
         L + "mlp.shared_expert.gate_proj.weight": r(Is, H),
         L + "mlp.shared_expert.up_proj.weight": r(Is, H),
         L + "mlp.shared_expert.down_proj.weight": r(H, Is)}
    for e in range(E):
        for w, s in (("gate_proj", (I, H)), ("up_proj", (I, H)), ("down_proj", (H, I))):
            t[L + "mlp.experts.%d.%s.weight" % (e, w)] = r(*s)
    rewrite(d, lambda x: {**x, **t})
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg.get("text_config", cfg)["mtp_num_hidden_layers"] = 1
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)


for name in sys.argv[2:]:
    m, d = make(name)
    if "fused" in name:
        rewrite(d, fuse_experts)
        from transformers import AutoModelForCausalLM, AutoModelForImageTextToText
        cls = AutoModelForImageTextToText if name.startswith("q35-") else AutoModelForCausalLM
        m2 = cls.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
        ref = np.fromfile(os.path.join(out, name + ".ref.f32"), dtype=np.float32)
        if not np.array_equal(logits_of(m2).ravel(), ref):
            print("%s: transformers reads the fused experts back to other logits" % name)
            sys.exit(1)
    if "mtp" in name:
        add_mtp(d, m, name.split("-")[1])
    print(name, "transformers", transformers.__version__,
          sorted(f for f in os.listdir(d) if f.endswith((".safetensors", ".json"))))
EOF
for v in "$V4 next-f32-mtp next-bf16-sharded-types" \
	"$V5 next-f32-v5 q35-f32-fused-mtp q35-bf16-sharded q35text-f16 moe-f32-v5"; do
	set -- $v
	py=$1/bin/python
	shift
	"$py" "$T/make.py" "$T" "$@" >"$T/make.log" 2>&1
	rc=$?
	if [ $rc -eq 77 ]; then cat "$T/make.log"; exit 77; fi
	if [ $rc -ne 0 ]; then tail -n 20 "$T/make.log"; echo "FAIL writing the checkpoints"; exit 1; fi
	grep -v "Writing\|fast path\|falling back\|Loading weights" "$T/make.log" | sed 's/^/     /'
done
ls "$T/q35-bf16-sharded" | grep -q 'model-00003-of-' || bad "q35-bf16-sharded: fewer than 3 shards"
ok "transformers reads q35-f32-fused-mtp's fused experts back to the same logits"

# relerr A B [max|median]: the worst (or median) per-row max |a - b| / max |a|
cat >"$T/relerr.py" <<'EOF'
import sys
import numpy as np
a = np.fromfile(sys.argv[1], dtype=np.float32)
b = np.fromfile(sys.argv[2], dtype=np.float32)
n = int(sys.argv[3])
if a.size != b.size or a.size % n:
    print("size %d vs %d" % (a.size, b.size)); sys.exit(0)
a, b = a.reshape(n, -1), b.reshape(n, -1)
if not np.isfinite(b).all():
    print("nan"); sys.exit(0)
e = sorted(np.abs(a[i] - b[i]).max() / np.abs(a[i]).max() for i in range(n))
print("%.3e" % (e[-1] if sys.argv[4] == "max" else e[(n - 1) // 2]))
EOF
within() { awk -v e="$1" -v t="$2" 'BEGIN { exit !(e ~ /^[0-9.e+-]+$/ && e + 0 <= t + 0) }'; }

# logits NAME GGUF OUT [--batch 1]
logits() {
	$BIN logits -m "$2" --token-ids "$IDS" --out "$3" -t 2 ${4:-} ${5:-} >"$T/log" 2>&1 ||
		{ bad "$1: logits failed"; cat "$T/log"; return 1; }
}

# check NAME TYPE TOL [max|median]: convert, logits batched and --batch 1
check() {
	name=$1 type=$2 tol=$3 stat=${4:-max}
	out=$T/$name-$type.gguf
	if ! $BIN convert "$T/$name" --out "$out" --type "$type" -q >"$T/conv.log" 2>&1; then
		bad "$name --type $type: convert failed"; cat "$T/conv.log"; return
	fi
	for b in "" 1; do
		logits "$name" "$out" "$T/got$b.f32" ${b:+--batch $b} || return
		e=$("$V4/bin/python" "$T/relerr.py" "$T/$name.ref.f32" "$T/got$b.f32" "$N_IDS" "$stat")
		if within "$e" "$tol"; then
			ok "$name --type $type${b:+ --batch $b}: $stat rel err $e <= $tol"
		else
			bad "$name --type $type${b:+ --batch $b}: $stat rel err $e > $tol"
		fi
	done
	[ "$type" = f32 ] && cp "$T/got.f32" "$T/$name.fm.f32" # batched
}

NAMES="next-f32-mtp next-bf16-sharded-types next-f32-v5 q35-f32-fused-mtp q35-bf16-sharded q35text-f16 moe-f32-v5"
for n in $NAMES; do
	check "$n" f32 $TOL_F32
done
check q35-f32-fused-mtp bf16 $TOL_BF16 median
check q35-f32-fused-mtp q8_0 $TOL_Q8_0 median
# bf16 / q8_0 straight from the checkpoint == the f32 conversion requantized
for type in bf16 q8_0; do
	$BIN quantize -m "$T/q35-f32-fused-mtp-f32.gguf" --out "$T/requant.gguf" --type $type -q \
		>/dev/null 2>&1 && logits requant "$T/requant.gguf" "$T/a.f32" &&
		logits direct "$T/q35-f32-fused-mtp-$type.gguf" "$T/b.f32" && cmp -s "$T/a.f32" "$T/b.f32" &&
		ok "$type: logits identical to quantize of the f32 conversion" ||
		bad "$type: logits differ from quantize of the f32 conversion"
done

# the file as llama.cpp's converter lays it out
$BIN info -m "$T/q35-f32-fused-mtp-q8_0.gguf" >"$T/info" 2>&1
for want in "blk.0.ssm_conv1d.weight f32" "blk.0.ssm_a f32" "blk.0.ssm_dt.bias f32" \
	    "blk.1.ffn_gate_inp_shexp.weight f32" "blk.0.attn_qkv.weight q8_0" \
	    "blk.3.attn_q.weight q8_0" "blk.6.nextn.eh_proj.weight q8_0" "blk.6.ffn_up_exps.weight q8_0"; do
	set -- $want
	got=$(awk -v n="$1" '$1 == n { print $2 }' "$T/info")
	[ "$got" = "$2" ] && ok "type of $1: $got" || bad "type of $1: '$got', expected $2"
done

# --no-mtp: no block 6, the same logits
if $BIN convert "$T/q35-f32-fused-mtp" --out "$T/nomtp.gguf" --type f32 --no-mtp -q >"$T/conv.log" 2>&1 &&
	$BIN info -m "$T/nomtp.gguf" >"$T/info" 2>&1 && ! grep -q "blk\.6\." "$T/info" &&
	logits nomtp "$T/nomtp.gguf" "$T/nomtp.f32" && cmp -s "$T/nomtp.f32" "$T/q35-f32-fused-mtp.fm.f32"; then
	ok "--no-mtp: no MTP block, the same logits"
else
	bad "--no-mtp"; cat "$T/conv.log"
fi

# a progress line on a terminal (script(1) gives it one), nothing otherwise
if command -v script >/dev/null 2>&1; then
	script -qec "$BIN convert '$T/q35-bf16-sharded' --out '$T/tty.gguf' -q" /dev/null >"$T/tty.log" 2>&1
	if grep -q "MB/s.*ETA" "$T/tty.log" && grep -q "converted" "$T/tty.log"; then
		ok "progress line on a terminal: $(tr '\r' '\n' <"$T/tty.log" | grep -m1 "MB/s" | sed 's/\x1b\[K//g')"
	else
		bad "no progress line on a terminal"; cat "$T/tty.log"
	fi
	$BIN quantize -m "$T/tty.gguf" --out "$T/tty-q.gguf" --type q8_0 -q 2>"$T/err" >/dev/null
	script -qec "$BIN quantize -m '$T/tty.gguf' --out '$T/tty-q.gguf' --type q8_0 -q" /dev/null >"$T/tty.log" 2>&1
	if ! grep -q "MB/s" "$T/err" && grep -q "MB/s.*ETA" "$T/tty.log"; then
		ok "quantize: a progress line on a terminal, none when stderr is not one"
	else
		bad "quantize progress"; cat "$T/err" "$T/tty.log"
	fi
fi
$BIN convert "$T/next-f32-v5" --out "$T/notty.gguf" -q >/dev/null 2>"$T/err"
[ -s "$T/err" ] && bad "convert wrote to stderr when it is not a terminal: $(head -c 200 "$T/err")" ||
	ok "convert: nothing on stderr when it is not a terminal"

# ---- llama.cpp 0.3.36's converter on the same checkpoints ----
LC=${FM_LLAMACPP_SRC:-$CACHE/llama-cpp-python-0.3.36-src}
if [ ! -f "$LC/vendor/llama.cpp/convert_hf_to_gguf.py" ]; then
	mkdir -p "$T/sdist" "$LC.tmp" &&
		"$V4/bin/pip" download -q --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d "$T/sdist" >/dev/null 2>&1 &&
		tar xzf "$T/sdist/llama_cpp_python-0.3.36.tar.gz" -C "$LC.tmp" --strip-components 1 --wildcards \
			'*/vendor/llama.cpp/convert_hf_to_gguf.py' '*/vendor/llama.cpp/conversion/*' \
			'*/vendor/llama.cpp/gguf-py/*' && rm -rf "$LC" && mv "$LC.tmp" "$LC"
	rm -rf "$LC.tmp"
fi
cat >"$T/gcmp.py" <<'EOF'
# gcmp.py OURS THEIRS TOL: every tensor of both files the same name, type and
# shape, and values equal (within TOL when TOL > 0); the <arch>.* keys equal
import sys
import numpy as np
import gguf
a, b, tol = gguf.GGUFReader(sys.argv[1]), gguf.GGUFReader(sys.argv[2]), float(sys.argv[3])
arch = a.fields["general.architecture"].contents()
ka = {k: f.contents() for k, f in a.fields.items() if k.startswith(arch + ".")}
kb = {k: f.contents() for k, f in b.fields.items() if k.startswith(arch + ".")}
bad = ["key %s: %s vs %s" % (k, ka.get(k), kb.get(k)) for k in sorted(set(ka) | set(kb))
       if ka.get(k) != kb.get(k) and not (isinstance(ka.get(k), float) and abs(ka[k] - kb.get(k, 0)) <= 1e-6 * abs(ka[k]))]
ta = {t.name: t for t in a.tensors}
tb = {t.name: t for t in b.tensors}
bad += ["tensor %s only in %s" % (n, "ours" if n in ta else "llama.cpp's") for n in sorted(set(ta) ^ set(tb))]
worst = 0.0
for n in sorted(set(ta) & set(tb)):
    x, y = ta[n], tb[n]
    if x.tensor_type != y.tensor_type or list(x.shape) != list(y.shape):
        bad.append("tensor %s: %s %s vs %s %s" % (n, x.tensor_type.name, list(x.shape), y.tensor_type.name, list(y.shape)))
    elif x.data.tobytes() != y.data.tobytes():  # f32 here: max |x - y| / max |y|
        xv, yv = np.asarray(x.data, dtype=np.float64), np.asarray(y.data, dtype=np.float64)
        d = float(np.abs(xv - yv).max() / max(np.abs(yv).max(), 1e-30))
        worst = max(worst, d)
        if d > tol:
            bad.append("tensor %s: values differ by %.3g of its largest" % (n, d))
print("; ".join(bad[:6]) if bad else "%d tensors and %d keys alike%s" % (
    len(ta), len(ka), "" if worst == 0 else " (within %.2e)" % worst))
sys.exit(1 if bad else 0)
EOF
if [ ! -f "$LC/vendor/llama.cpp/convert_hf_to_gguf.py" ]; then
	echo "note: llama.cpp's converter could not be had (pip download llama-cpp-python==0.3.36); its checks skipped"
else
	for n in $NAMES; do
		# its hybrids assert on a checkpoint without an MTP block unless told
		case $n in *mtp* | moe-*) mtp="" ;; *) mtp=--no-mtp ;; esac
		case $n in *f16*) tol=1e-3 ;; *) tol=0 ;; esac
		if ! PYTHONPATH="$LC/vendor/llama.cpp/gguf-py" "$V5/bin/python" \
			"$LC/vendor/llama.cpp/convert_hf_to_gguf.py" "$T/$n" --outfile "$T/$n-lc.gguf" \
			--outtype f32 $mtp >"$T/lc.log" 2>&1; then
			bad "$n: llama.cpp's converter failed"; tail -n 5 "$T/lc.log"; continue
		fi
		if r=$(PYTHONPATH="$LC/vendor/llama.cpp/gguf-py" "$V5/bin/python" "$T/gcmp.py" \
			"$T/$n-f32.gguf" "$T/$n-lc.gguf" $tol); then
			ok "$n: llama.cpp's conversion: $r"
		else
			bad "$n: llama.cpp's conversion differs: $r"
		fi
		logits "$n" "$T/$n-lc.gguf" "$T/lc.f32" || continue
		if cmp -s "$T/lc.f32" "$T/$n.fm.f32"; then
			ok "$n: flashmoe's logits on llama.cpp's file identical to those on its own"
		else
			e=$("$V4/bin/python" "$T/relerr.py" "$T/$n.fm.f32" "$T/lc.f32" "$N_IDS" max)
			case $n in *f16*) lim=$TOL_LC_F16 ;; *) lim=0 ;; esac # F16: llama.cpp's rounding
			within "$e" "$lim" && ok "$n: flashmoe's logits on llama.cpp's file within $e (<= $lim)" ||
				bad "$n: flashmoe's logits on llama.cpp's file differ: $e > $lim"
		fi
	done
fi

# ---- bad inputs ----
# expect_error NAME PATTERN DIR: exit 1, PATTERN in stderr, no output left
expect_error() {
	name=$1 pat=$2 dir=$3
	rm -f "$T/bad.gguf"
	$BIN convert "$dir" --out "$T/bad.gguf" >"$T/out" 2>"$T/err"
	rc=$?
	if [ $rc -ne 1 ]; then
		bad "$name: exit $rc"; cat "$T/err"; return
	fi
	if ! grep -qi -- "$pat" "$T/err"; then
		bad "$name: message lacks '$pat':"; cat "$T/err"; return
	fi
	if [ -e "$T/bad.gguf" ] || ls "$T" | grep -q "bad.gguf.tmp"; then
		bad "$name: output file left behind"; return
	fi
	ok "$name: $(head -n 1 "$T/err")"
}

# mkbad NAME FROM: a copy of checkpoint FROM (weights linked, JSON copied)
mkbad() {
	mkdir -p "$T/$1"
	for f in "$T/$2"/*; do
		case $f in
		*.json) cp "$f" "$T/$1/" ;;
		*) ln -s "$f" "$T/$1/" ;;
		esac
	done
}
# edit_config DIR PYTHON: config.json changed by the statement (c: the dict, t: its text model)
edit_config() {
	"$V4/bin/python" - "$1/config.json" "$2" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
t = c.get("text_config", c)
exec(sys.argv[2])
json.dump(c, open(sys.argv[1], "w"), indent=2)
EOF
}
# edit_tensors DIR FROM PYTHON: model.safetensors of FROM changed by the statement (t: the dict)
edit_tensors() {
	rm -f "$1/model.safetensors"
	"$V4/bin/python" - "$2/model.safetensors" "$1/model.safetensors" "$3" <<'EOF'
import sys
import torch
from safetensors.torch import load_file, save_file
t = load_file(sys.argv[1])
exec(sys.argv[3])
save_file(t, sys.argv[2], metadata={"format": "pt"})
EOF
}

mkbad b_miss next-f32-v5
edit_tensors "$T/b_miss" "$T/next-f32-v5" 'del t["model.layers.2.linear_attn.in_proj_qkvz.weight"]'
expect_error "missing tensor" "missing tensor 'model.layers.2.linear_attn.in_proj_qkvz.weight'" "$T/b_miss"

mkbad b_shape q35-f32-fused-mtp
edit_tensors "$T/b_shape" "$T/q35-f32-fused-mtp" \
	'n = "model.language_model.layers.0.linear_attn.conv1d.weight"; t[n] = t[n][:96].clone()'
expect_error "wrong shape" "conv1d.weight': shape \[96, 1, 4\], expected \[256, 1, 4\]" "$T/b_shape"

mkbad b_unused q35-f32-fused-mtp
edit_tensors "$T/b_unused" "$T/q35-f32-fused-mtp" 't["model.language_model.layers.1.linear_attn.extra.weight"] = torch.zeros(4)'
expect_error "unused tensor" "linear_attn.extra.weight' has no place in a qwen35moe model" "$T/b_unused"

mkbad b_mtp q35-f32-fused-mtp
edit_config "$T/b_mtp" 't["mtp_num_hidden_layers"] = 2'
expect_error "MTP layer count" "mtp_num_hidden_layers is 2, but the checkpoint has 1" "$T/b_mtp"

mkbad b_yarn q35-bf16-sharded
edit_config "$T/b_yarn" 't["rope_parameters"].update(rope_type="yarn", factor=4.0)'
expect_error "rope scaling (5.x)" "rope_type \"yarn\"\|rope_parameters.factor" "$T/b_yarn"

mkbad b_scaling next-f32-mtp
edit_config "$T/b_scaling" 'c["rope_scaling"] = {"type": "linear", "factor": 2.0}'
expect_error "rope scaling (4.x)" "rope_parameters.factor\|rope_type \"linear\"" "$T/b_scaling"

mkbad b_key next-f32-v5
edit_config "$T/b_key" 'c["attention_sink_size"] = 4'
expect_error "unknown key" "unknown key \"attention_sink_size\"" "$T/b_key"

mkbad b_tkey q35-bf16-sharded
edit_config "$T/b_tkey" 't["qk_layernorm_scale"] = 2.0'
expect_error "unknown text_config key" "unknown key \"text_config.qk_layernorm_scale\"" "$T/b_tkey"

mkbad b_gate q35-bf16-sharded
edit_config "$T/b_gate" 't["attn_output_gate"] = False'
expect_error "ungated attention" "attn_output_gate is false" "$T/b_gate"

mkbad b_bias next-f32-v5
edit_config "$T/b_bias" 'c["attention_bias"] = True'
expect_error "attention bias" "attention_bias is true" "$T/b_bias"

mkbad b_swa moe-f32-v5
edit_config "$T/b_swa" 'c["use_sliding_window"] = True; c["sliding_window"] = 64'
expect_error "sliding window" "use_sliding_window is true" "$T/b_swa"

mkbad b_ltype next-f32-v5
edit_config "$T/b_ltype" 'c["layer_types"][1] = "sliding_attention"'
expect_error "layer type" "layer type sliding_attention" "$T/b_ltype"

mkbad b_dv next-f32-v5
edit_config "$T/b_dv" 'c["linear_value_head_dim"] = 16'
expect_error "DeltaNet head sizes" "linear_value_head_dim 16 != linear_key_head_dim 32" "$T/b_dv"

echo "$(( $(date +%s) - t_start )) s"
if [ $fails -ne 0 ]; then
	echo "$fails failed"
	exit 1
fi
echo "all passed"
exit 0
