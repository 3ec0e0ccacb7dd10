#!/usr/bin/env python3
"""eval_ppl.py: perplexity of a model over a text file, computed exactly as
`flashmoe perplexity` computes it (the method is defined in README.md,
"Perplexity"), from a training checkpoint (--ckpt) or from a GGUF file
(--gguf: tensors dequantized with gguf-py, so the numbers belong to the very
weights flashmoe runs).

  eval_ppl.py --gguf model.gguf -f heldout.txt [-c 512] [--chunks N] [--threads N]

The text is tokenized with the Qwen3 tokenizer.json of the npm cache (no BOS,
special-token strings not parsed); the token count and an FNV-1a hash of the
ids are printed so that a flashmoe run on the same file can be checked to have
scored the same tokens.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from model import Config, Qwen3Moe  # noqa: E402


def fnv1a64(ids):
    """FNV-1a 64 over the ids as little-endian uint32 bytes (as cmd_perplexity.c)."""
    h = 0xcbf29ce484222325
    for b in np.asarray(ids, dtype="<u4").tobytes():
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h


@torch.no_grad()
def perplexity(model, ids, ctx, max_chunks=None, progress=True):
    """README.md "Perplexity": windows k = 0 .. n_chunk-1 of ctx tokens,
    ids[k*ctx : (k+1)*ctx], each evaluated from an empty cache; positions
    j = ctx//2 .. ctx-2 of a window score its token j+1 under
    log_softmax(logits[j]) (fp32 logits, double log-sum-exp)."""
    if ctx < 4:
        raise ValueError("ctx must be at least 4")
    ids = np.asarray(ids, dtype=np.int64)
    n_chunk = len(ids) // ctx
    if max_chunks:
        n_chunk = min(n_chunk, max_chunks)
    if n_chunk < 1:
        raise ValueError(f"{len(ids)} tokens are fewer than one window of {ctx}")
    first = ctx // 2
    nll, count = 0.0, 0
    t0 = time.time()
    for k in range(n_chunk):
        w = torch.from_numpy(ids[k * ctx:(k + 1) * ctx])
        logits = model.logits(w[None])[0]                      # [ctx, n_vocab] fp32
        lp = torch.log_softmax(logits[first:ctx - 1].double(), dim=-1)
        tgt = w[first + 1:ctx]
        nll -= lp.gather(1, tgt[:, None]).sum().item()
        count += ctx - 1 - first
        if progress:
            end = "\n" if k + 1 == n_chunk else ","
            print(f"[{k + 1}]{math.exp(nll / count):.4f}", end=end, file=sys.stderr, flush=True)
    return dict(ppl=math.exp(nll / count), nll_mean=nll / count, n_scored=count,
                n_chunk=n_chunk, n_tokens=int(len(ids)), ctx=ctx,
                seconds=time.time() - t0)


def load_ckpt(path):
    ck = torch.load(path, weights_only=False, map_location="cpu")
    cfg = Config(**ck["cfg"])
    state = ck["model"]
    model = Qwen3Moe(cfg, state["active_ids"])
    model.load_state_dict(state)
    return model.eval()


def _field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        if default is None:
            raise KeyError(f"GGUF key {key} missing")
        return default
    return f.contents()


def load_gguf(path):
    """A Qwen3Moe with every vocabulary row active, weights from the GGUF."""
    import gguf
    r = gguf.GGUFReader(path)
    a = _field(r, "general.architecture")
    if a != "qwen3moe":
        raise ValueError(f"{path}: architecture {a}, expected qwen3moe")
    t = {x.name: x for x in r.tensors}
    n_embd = int(_field(r, f"{a}.embedding_length"))
    n_head = int(_field(r, f"{a}.attention.head_count"))
    cfg = Config(n_layer=int(_field(r, f"{a}.block_count")), n_embd=n_embd, n_head=n_head,
                 n_head_kv=int(_field(r, f"{a}.attention.head_count_kv", n_head)),
                 head_dim=int(_field(r, f"{a}.attention.key_length", n_embd // n_head)),
                 n_expert=int(_field(r, f"{a}.expert_count")),
                 n_expert_used=int(_field(r, f"{a}.expert_used_count")),
                 n_ff_exp=int(_field(r, f"{a}.expert_feed_forward_length")),
                 n_vocab=int(t["token_embd.weight"].shape[1]),
                 n_ctx=int(_field(r, f"{a}.context_length", 4096)),
                 rope_theta=float(_field(r, f"{a}.rope.freq_base", 10000.0)),
                 rms_eps=float(_field(r, f"{a}.attention.layer_norm_rms_epsilon", 1e-6)))
    if "output.weight" in t:
        raise ValueError(f"{path}: untied output.weight is not supported here")

    def w(name):
        x = t[name]
        arr = gguf.quants.dequantize(x.data, x.tensor_type)
        shape = tuple(int(d) for d in reversed(x.shape))  # ne -> numpy order
        return torch.from_numpy(np.array(arr, dtype=np.float32).reshape(shape))  # a writable copy

    model = Qwen3Moe(cfg)
    sd = {"embed": w("token_embd.weight"), "output_norm": w("output_norm.weight")}
    names = dict(attn_norm="attn_norm", ffn_norm="ffn_norm", **{
        "attn.wq": "attn_q", "attn.wk": "attn_k", "attn.wv": "attn_v", "attn.wo": "attn_output",
        "attn.q_norm": "attn_q_norm", "attn.k_norm": "attn_k_norm",
        "moe.router": "ffn_gate_inp", "moe.w_gate": "ffn_gate_exps",
        "moe.w_up": "ffn_up_exps", "moe.w_down": "ffn_down_exps"})
    for i in range(cfg.n_layer):
        for ours, theirs in names.items():
            sd[f"blocks.{i}.{ours}"] = w(f"blk.{i}.{theirs}.weight")
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if m not in ("active_ids", "id_map")]
    if missing or unexpected:
        raise ValueError(f"{path}: missing {missing}, unexpected {unexpected}")
    return model.eval()


def main():
    ap = argparse.ArgumentParser(description="perplexity as flashmoe perplexity computes it")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", help="final.pt or ckpt.pt of train.py")
    src.add_argument("--gguf", help="a qwen3moe GGUF (any type gguf-py dequantizes)")
    ap.add_argument("-f", "--file", required=True, help="text file")
    ap.add_argument("-c", "--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=0, help="score only the first N windows")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the result here")
    args = ap.parse_args()
    common.set_threads(args.threads)
    model = load_ckpt(args.ckpt) if args.ckpt else load_gguf(args.gguf)
    with open(args.file, encoding="utf-8") as f:
        ids = common.encode(common.load_tokenizer(), f.read())
    print(f"tokens: {len(ids)} (fnv1a64 {fnv1a64(ids):016x})", flush=True)
    r = perplexity(model, ids, args.ctx, max_chunks=args.chunks)
    r.update(model=args.ckpt or args.gguf, file=args.file, fnv1a64=f"{fnv1a64(ids):016x}")
    print(f"{r['n_chunk']} windows of {args.ctx} tokens, {r['n_scored']} scored tokens, "
          f"{r['seconds']:.1f} s")
    print(f"perplexity: {r['ppl']:.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()
