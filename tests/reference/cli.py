"""cli.py: command line of the NumPy reference, shaped like `flashmoe logits`.

  /usr/bin/python3 tests/reference/cli.py MODEL.gguf --token-ids 1,2,3 \
      --out logits.f32 [--experts-per-token K] [--act-quant] [--top]

(also reached as qwen3moe.py or qwen3next.py with the same arguments)
writes n_tokens x n_vocab little-endian float32 logits (every position, row
after row), the same layout the engine writes. Dispatches on the file's
general.architecture: qwen3moe -> qwen3moe.py; qwen3next, qwen35moe ->
qwen3next.py. Exit 0 on success, 1 on a bad file or token id (one line on
stderr naming what is wrong), 2 on bad usage.
Owns: argument parsing, dispatch and output only; the math is in the models.
"""

import argparse
import os
import sys

import numpy as np

import qwen3moe
import qwen3next
from gguf_reader import GGUFError, GGUFFile


def parse_token_ids(text):
    try:
        ids = [int(t) for t in text.split(",") if t.strip() != ""]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"bad --token-ids {text!r}: {e}")
    if not ids:
        raise argparse.ArgumentTypeError("--token-ids is empty")
    return ids


def _prog():
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if name.endswith(".py") else "qwen3moe.py"


def build_parser():
    p = argparse.ArgumentParser(
        prog=_prog(),
        description="float64 NumPy reference logits for a qwen3moe,"
                    " qwen3next or qwen35moe GGUF")
    p.add_argument("model", help="GGUF file (general.architecture qwen3moe,"
                                 " qwen3next or qwen35moe)")
    p.add_argument("--token-ids", required=True, type=parse_token_ids,
                   help="comma-separated token ids, positions 0..n-1")
    p.add_argument("--out", required=True,
                   help="output file: n_tokens x n_vocab float32 LE")
    p.add_argument("--experts-per-token", type=int, default=None,
                   help="override {arch}.expert_used_count")
    p.add_argument("--act-quant", action="store_true",
                   help="round quantized-weight mat-vec inputs to Q8_0/Q8_K"
                        " as a ggml-style engine does (act_quant.py)")
    p.add_argument("--top", action="store_true",
                   help="print the arg-max token of every position")
    return p


def model_for(path):
    """The reference module for the file's general.architecture (qwen3moe
    for anything else, which then refuses the file by name)."""
    with GGUFFile(path) as g:
        arch = g.get("general.architecture")
    return qwen3next if arch in qwen3next.ARCHS else qwen3moe


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = parser.prog
    try:
        logits = model_for(args.model).logits_for(
            args.model, args.token_ids, args.experts_per_token,
            act_quant_on=args.act_quant)
    except (GGUFError, qwen3moe.ModelError, ValueError, OSError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    try:
        logits.astype("<f4").tofile(args.out)
    except OSError as e:
        print(f"{prog}: cannot write {args.out}: {e}", file=sys.stderr)
        return 1
    if args.top:
        print(" ".join(str(int(t)) for t in np.argmax(logits, axis=-1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
