#!/usr/bin/env python3
"""compare_ppl.py: run `flashmoe perplexity` and eval_ppl.py (PyTorch, on the
same GGUF's dequantized weights) over the same text and windows, and check
that the two perplexities agree within --tol (relative; 0.5% by default) and
that both scored the same token ids. Exit 0 pass, 1 fail.

  compare_ppl.py --flashmoe build/release/flashmoe --gguf model.gguf -f text.txt
                 [-c 512] [--chunks N] [--threads 2] [--tol 0.005] [--json out.json]
"""
import argparse
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import eval_ppl  # noqa: E402


def run_flashmoe(args):
    cmd = [args.flashmoe, "perplexity", "-m", args.gguf, "-f", args.file, "-c", str(args.ctx),
           "-t", str(args.threads)]
    if args.chunks:
        cmd += ["--chunks", str(args.chunks)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    ppl = float(re.search(r"^perplexity: ([0-9.]+)$", out, re.M).group(1))
    tok = re.search(r"^tokens: (\d+) \(fnv1a64 ([0-9a-f]+)\)$", out, re.M)
    scored = int(re.search(r"^scored tokens: (\d+)", out, re.M).group(1))
    return dict(ppl=ppl, n_tokens=int(tok.group(1)), fnv1a64=tok.group(2), n_scored=scored)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flashmoe", required=True)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("-f", "--file", required=True)
    ap.add_argument("-c", "--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tol", type=float, default=0.005)
    ap.add_argument("--json")
    args = ap.parse_args()
    common.set_threads(args.threads)
    fm = run_flashmoe(args)
    with open(args.file, encoding="utf-8") as f:
        ids = common.encode(common.load_tokenizer(), f.read())
    py = eval_ppl.perplexity(eval_ppl.load_gguf(args.gguf), ids, args.ctx,
                             max_chunks=args.chunks, progress=False)
    py["fnv1a64"] = f"{eval_ppl.fnv1a64(ids):016x}"
    rel = abs(fm["ppl"] - py["ppl"]) / py["ppl"]
    same_tokens = (fm["n_tokens"], fm["fnv1a64"], fm["n_scored"]) == \
        (py["n_tokens"], py["fnv1a64"], py["n_scored"])
    ok = same_tokens and rel <= args.tol
    print(f"{os.path.basename(args.gguf)}: flashmoe {fm['ppl']:.4f}, pytorch {py['ppl']:.4f}, "
          f"relative difference {rel:.2e} (tolerance {args.tol}); "
          f"{py['n_scored']} scored tokens; same token ids: {same_tokens} -> "
          f"{'PASS' if ok else 'FAIL'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(flashmoe=fm, pytorch=py, rel_diff=rel, ok=ok), f, indent=1)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
