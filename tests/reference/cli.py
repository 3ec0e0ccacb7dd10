"""cli.py: command line of the NumPy reference, shaped like `flashmoe logits`.

  /usr/bin/python3 tests/reference/qwen3moe.py MODEL.gguf --token-ids 1,2,3 \
      --out logits.f32 [--experts-per-token K] [--act-quant] [--top]

writes n_tokens x n_vocab little-endian float32 logits (every position, row
after row), the same layout the engine writes. Exit 0 on success, 1 on a bad
file or token id (one line on stderr naming what is wrong), 2 on bad usage.
Owns: argument parsing and output only; the math is in qwen3moe.py.
"""

import argparse
import sys

import numpy as np

import qwen3moe
from gguf_reader import GGUFError


def parse_token_ids(text):
    try:
        ids = [int(t) for t in text.split(",") if t.strip() != ""]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"bad --token-ids {text!r}: {e}")
    if not ids:
        raise argparse.ArgumentTypeError("--token-ids is empty")
    return ids


def build_parser():
    p = argparse.ArgumentParser(
        prog="qwen3moe.py",
        description="float64 NumPy reference logits for a qwen3moe GGUF")
    p.add_argument("model", help="GGUF file (general.architecture qwen3moe)")
    p.add_argument("--token-ids", required=True, type=parse_token_ids,
                   help="comma-separated token ids, positions 0..n-1")
    p.add_argument("--out", required=True,
                   help="output file: n_tokens x n_vocab float32 LE")
    p.add_argument("--experts-per-token", type=int, default=None,
                   help="override qwen3moe.expert_used_count")
    p.add_argument("--act-quant", action="store_true",
                   help="round quantized-weight mat-vec inputs to Q8_0/Q8_K"
                        " as a ggml-style engine does (act_quant.py)")
    p.add_argument("--top", action="store_true",
                   help="print the arg-max token of every position")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        logits = qwen3moe.logits_for(args.model, args.token_ids,
                                     args.experts_per_token,
                                     act_quant_on=args.act_quant)
    except (GGUFError, qwen3moe.ModelError, ValueError, OSError) as e:
        print(f"qwen3moe.py: {e}", file=sys.stderr)
        return 1
    try:
        logits.astype("<f4").tofile(args.out)
    except OSError as e:
        print(f"qwen3moe.py: cannot write {args.out}: {e}", file=sys.stderr)
        return 1
    if args.top:
        print(" ".join(str(int(t)) for t in np.argmax(logits, axis=-1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
