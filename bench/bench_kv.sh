#!/bin/sh
# bench/bench_kv.sh: generation speed at depth for each KV cache format
# (issue 17, docs/TURBOQUANT.md "Speed"), on a Qwen3-30B-A3B-shaped synthetic
# Q4_K file (hidden 2048, 32 query / 4 KV heads of 128, 128 experts, 8 used):
# resident (no --mem) and streamed (--mem a third of the file, inside
# ../shared/bin/memcap so the page cache cannot hold the rest).
#
# Depth: `flashmoe bench -d D` evaluates a short prompt for real, then copies
# its KV rows over and over up to D positions (fm_ctx_bench_fill_kv) instead
# of evaluating D tokens (a 32k prefill takes hours on 2 cores); each
# generated token then attends over D positions, exactly the work it would do
# after a real D-token prompt. Attention and weight reads both scale with the
# number of layers, so a 12-layer file keeps the 48-layer model's ratio of the
# two per token.
#
# Usage: sh bench/bench_kv.sh [MODEL] [DEPTHS] [FORMATS] [NGEN] [REPS]
#   MODEL    default /work/bench-files/q3-30b-shape-L12.gguf (made with
#            flashmoe gen-tiny --type q4_k --layers 12 --hidden 2048 --heads 32
#            --kv-heads 4 --head-dim 128 --experts 128 --experts-used 8
#            --expert-ff 768 --vocab 151936 --ctx 40960 --seed 1)
#   DEPTHS   default "1024 8192 32768"
#   FORMATS  default "f16 q8_0 tq4 tq3.5 q8_0/tq4" (K/V when they differ)
#   MODES    env, default "resident streamed"
# Prints one JSON line per run and a Markdown table of medians.
set -e
cd "$(dirname "$0")/.."
M=${1:-/work/bench-files/q3-30b-shape-L12.gguf}
DEPTHS=${2:-"1024 8192 32768"}
FORMATS=${3:-"f16 q8_0 tq4 tq3.5 q8_0/tq4"}
NGEN=${4:-8}
REPS=${5:-2}
MODES=${MODES:-"resident streamed"}
B=${FM_BIN:-build/release/flashmoe}
SHARED=$(cd .. && pwd)/shared/bin
OUT=${OUT:-build/bench/kv}
mkdir -p "$OUT"
[ -x "$B" ] || make -s >/dev/null
size=$(stat -c %s "$M")
MEM=$((size / 3 / 1048576))M
LIMIT=$((size / 3 / 1048576 + 256))M
echo "model $M ($((size / 1048576)) MiB); streamed: --mem $MEM under memcap $LIMIT; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
: >"$OUT/runs.jsonl"
for rep in $(seq "$REPS"); do
	for d in $DEPTHS; do
		for mode in $MODES; do
			for f in $FORMATS; do
				k=${f%/*} v=${f#*/}
				log="$OUT/run-$mode-$d-$(echo "$f" | tr / _)-$rep.txt"
				if [ "$mode" = streamed ]; then
					"$SHARED/memcap" "$LIMIT" "$B" bench -m "$M" -p 32 -n "$NGEN" -d "$d" -t 2 \
						--json --stats -ctk "$k" -ctv "$v" --mem "$MEM" >"$log" 2>&1 || true
				else
					"$B" bench -m "$M" -p 32 -n "$NGEN" -d "$d" -t 2 --json --stats \
						-ctk "$k" -ctv "$v" >"$log" 2>&1 || true
				fi
				tg=$(sed -n 's/.*"tg_tok_s":\([0-9.]*\).*/\1/p' "$log")
				att=$(sed -n 's/^time per token (ms): attention \([0-9.]*\),.*/\1/p' "$log")
				hit=$(sed -n 's/.*hits [0-9]* (\([0-9.]*\)%).*/\1/p' "$log")
				err=$(grep -m1 "flashmoe bench:" "$log" | tr '"' "'" || true)
				line="{\"depth\":$d,\"mode\":\"$mode\",\"kv\":\"$f\",\"rep\":$rep,\"tg\":${tg:-0},\"attn_ms\":${att:-0},\"hit\":${hit:-0},\"error\":\"$err\"}"
				echo "$line" | tee -a "$OUT/runs.jsonl"
			done
		done
	done
done
/usr/bin/python3 - "$OUT/runs.jsonl" "$M" "$B" <<'PY'
import json, statistics, subprocess, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
info = subprocess.run([sys.argv[3], "info", "-m", sys.argv[2]], capture_output=True, text=True).stdout
hp = dict(zip(("layers", "kv"), (0, 0)))
for l in info.splitlines():
    if l.startswith("layers "):
        w = l.replace(",", "").split()
        hp["layers"], hp["kv"] = int(w[1]), int(w[7].rstrip(")"))
        hd = int(w[9])
# bytes of one row of head_dim 128 (src/kv.c; docs/TURBOQUANT.md "Compression")
row = {"f32": 512, "f16": 256, "q8_0": 136, "tq4": 66, "tq3.5": 56, "tq3": 50, "tq2.5": 40}
def per_tok(f):
    k, _, v = f.partition("/")
    if hd != 128 or k not in row or (v or k) not in row:
        return None
    return hp["layers"] * hp["kv"] * (row[k] + row[v or k]) / 1024.0
print("| depth | mode | KV (K/V) | KV MiB at depth | tg tok/s (median) | attention ms/token | expert hits |")
print("| --- | --- | --- | --- | --- | --- | --- |")
seen = []
for r in runs:
    key = (r["depth"], r["mode"], r["kv"])
    if key in seen:
        continue
    seen.append(key)
    rs = [x for x in runs if (x["depth"], x["mode"], x["kv"]) == key and x["tg"] > 0]
    if not rs:
        err = next((x["error"] for x in runs if (x["depth"], x["mode"], x["kv"]) == key), "")
        print(f"| {key[0]} | {key[1]} | {key[2]} | | refused: {err} | | |")
        continue
    pt = per_tok(r["kv"])
    mib = f"{pt * key[0] / 1024:.0f}" if pt else ""
    hit = statistics.median(x["hit"] for x in rs)
    print(f"| {key[0]} | {key[1]} | {key[2]} | {mib} | {statistics.median(x['tg'] for x in rs):.2f} | "
          f"{statistics.median(x['attn_ms'] for x in rs):.1f} | {f'{hit:.1f}%' if key[1] == 'streamed' else '-'} |")
PY
