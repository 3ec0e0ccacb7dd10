#!/usr/bin/env python3
"""bench/vs_llamacpp.py: flashmoe against llama.cpp on the same GGUF file.

Two measurements, both with llama.cpp through llama-cpp-python's C API (the
library as compiled on this machine: tools/llamacpp_venv.sh):

  speed   prompt processing of P random token ids in one batch, then N
          single-token decodes (the token fed back is the argmax), at each
          thread count, after one untimed run of each engine (page cache);
          llama.cpp's own timers (llama_perf_context), and
          `flashmoe bench --json` for flashmoe, which runs the same procedure
          with the same token ids (the same LCG). Runs alternate between the
          engines, REPS times, and the median and best are printed.
  logits  the logits of every position of a token sequence (the first
          tokens of --text, tokenized by flashmoe, or random ids: a trained
          model's untrained rows are zero, so use text there), from
          `flashmoe logits` and from llama.cpp (one batch, every row kept):
          max |a - b| / max |b| per position, the mean KL divergence of the
          next-token distributions, and top-1 agreement.

Usage:
  P=$(sh tools/llamacpp_venv.sh)/bin/python
  $P bench/vs_llamacpp.py speed  MODEL [--threads 1,2] [-p 512] [-n 128] [--reps 3]
                               [--llama-repack on|off] [--flashmoe-args '--mem 3G'] [--dropcache]
  (under a memory limit: ../shared/bin/memcap 3.2G $P bench/vs_llamacpp.py speed ...)
  $P bench/vs_llamacpp.py logits MODEL [--tokens 64] [--seed 1] [--text FILE] [--kv f32|f16]
                               [--llama-defaults] [--llama-repack on|off]
  $P bench/vs_llamacpp.py depth  MODEL [--depths 1024,8192] [-n 8] [--reps 1]
                               [--llama-kv f16,q8_0] [--flashmoe-kv f16,q8_0,tq4,tq3.5,q8_0/tq4]

  depth   generation speed after D tokens of context (docs/TURBOQUANT.md
          "Speed"): llama.cpp with flash attention on and its K and V caches
          at each --llama-kv type (-ctk/-ctv), its context filled by a real
          prefill of D random ids (untimed); flashmoe `bench -d D` at each
          --flashmoe-kv (K/V), its context filled by copying a 32-token
          prompt's KV rows (cmd_bench.c). Then N single-token decodes each,
          timed: llama_perf_context's eval time, flashmoe's tg_tok_s.
"""
import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import llama_cpp as L

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DROPCACHE = os.path.join(ROOT, "..", "shared", "bin", "dropcache")
FLASHMOE = os.environ.get("FM_BIN") or os.path.join(ROOT, "build", "release", "flashmoe")


def bench_ids(seed, n, n_vocab):
    """The prompt flashmoe bench uses (src/cli/cmd_bench.c): a 64-bit LCG."""
    m = (1 << 64) - 1
    x = (seed * 2654435761 + 12345) & m
    ids = []
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & m
        ids.append((x >> 33) % n_vocab)
    return ids


class Llama:
    """One llama.cpp model and context, driven through the C API."""

    def __init__(self, path, n_ctx, threads, n_batch=512, repack=True, kv="f16", flash_attn=-1,
                 kv_v=None):
        L.llama_backend_init()
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = 0
        # True (the default) lets the CPU backend copy weights it can repack
        # into an interleaved layout (anonymous memory, faster kernels);
        # False computes straight from the mmap'd file
        mp.use_extra_bufts = repack
        self.model = L.llama_model_load_from_file(path.encode(), mp)
        if not self.model:
            sys.exit(f"llama.cpp could not load {path}")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        cp = L.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = n_batch
        cp.n_ubatch = n_batch
        cp.n_threads = threads
        cp.n_threads_batch = threads
        types = {"f32": 0, "f16": 1, "q8_0": 8}  # ggml type ids
        cp.type_k = types[kv]
        cp.type_v = types[kv_v or kv]
        cp.flash_attn_type = flash_attn  # -1 auto (its default), 0 off, 1 on
        cp.no_perf = False  # keep llama.cpp's own timers (llama_perf_context)
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            sys.exit("llama.cpp could not create a context")
        self.batch = L.llama_batch_init(n_batch, 0, 1)
        self.n_batch = n_batch

    def clear(self):
        L.llama_memory_clear(L.llama_get_memory(self.ctx), True)

    def decode(self, ids, pos0, all_logits=False):
        """Decode ids at positions pos0.. in batches; logits of the last (or every) row."""
        rows = []
        for s in range(0, len(ids), self.n_batch):
            chunk = ids[s:s + self.n_batch]
            b = self.batch
            b.n_tokens = len(chunk)
            for i, t in enumerate(chunk):
                b.token[i] = t
                b.pos[i] = pos0 + s + i
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = 0
                b.logits[i] = all_logits or (s + i == len(ids) - 1)
            if L.llama_decode(self.ctx, b) != 0:
                sys.exit("llama_decode failed")
            if all_logits:
                for i in range(len(chunk)):
                    rows.append(self.row(i))
        return np.stack(rows) if all_logits else self.row(-1)

    def row(self, i):
        p = L.llama_get_logits_ith(self.ctx, i)
        return np.ctypeslib.as_array(ctypes.cast(p, ctypes.POINTER(ctypes.c_float)),
                                     shape=(self.n_vocab,)).copy()

    def close(self):
        L.llama_batch_free(self.batch)
        L.llama_free(self.ctx)
        L.llama_model_free(self.model)


def llama_speed(path, threads, n_prompt, n_gen, seed, repack=True, fm_args=()):
    m = Llama(path, n_prompt + n_gen + 8, threads, repack=repack)
    ids = bench_ids(seed, n_prompt, m.n_vocab)
    m.decode(ids[:8], 0)  # warm-up, as flashmoe bench does
    m.clear()
    L.llama_perf_context_reset(m.ctx)
    logits = m.decode(ids, 0)
    for i in range(n_gen):
        m.decode([int(np.argmax(logits))], n_prompt + i)
        logits = m.row(-1)
    perf = L.llama_perf_context(m.ctx)
    m.close()
    return {"pp": perf.n_p_eval / (perf.t_p_eval_ms / 1e3),
            "tg": perf.n_eval / (perf.t_eval_ms / 1e3)}


def flashmoe_speed(path, threads, n_prompt, n_gen, seed, repack=True, fm_args=()):
    out = subprocess.run([FLASHMOE, "bench", "-m", path, "-p", str(n_prompt), "-n", str(n_gen),
                          "-t", str(threads), "--seed", str(seed), "--json", *fm_args],
                         check=True, capture_output=True, text=True).stdout
    j = json.loads(out.strip().splitlines()[-1])
    return {"pp": j["pp_tok_s"], "tg": j["tg_tok_s"], "isa": j["isa"]}


def cmd_speed(a):
    threads = [int(t) for t in a.threads.split(",")]
    res = {}
    kw = {"repack": a.llama_repack == "on", "fm_args": a.flashmoe_args.split()}
    # one untimed run of each engine first: both map the file, and the first
    # run after another large file was read pays page faults from the disk.
    # With --dropcache instead: every run starts with the file out of the cache
    for eng, fn in (("flashmoe", flashmoe_speed), ("llama.cpp", llama_speed)):
        if not a.dropcache:
            fn(a.model, threads[-1], a.n_prompt, 4, a.seed, **kw)
    for rep in range(a.reps):
        for t in threads:
            for eng, fn in (("flashmoe", flashmoe_speed), ("llama.cpp", llama_speed)):
                if a.dropcache:
                    subprocess.run([DROPCACHE, a.model], check=True, capture_output=True)
                r = fn(a.model, t, a.n_prompt, a.n_gen, a.seed, **kw)
                res.setdefault((eng, t), []).append(r)
                print(json.dumps({"engine": eng, "threads": t, "rep": rep, **r}), flush=True)
    print(f"\n| engine | threads | pp{a.n_prompt} tok/s median (best) | "
          f"tg{a.n_gen} tok/s median (best) |")
    print("| --- | --- | --- | --- |")
    for t in threads:
        for eng in ("flashmoe", "llama.cpp"):
            rs = res[(eng, t)]
            pp = [r["pp"] for r in rs]
            tg = [r["tg"] for r in rs]
            print(f"| {eng} | {t} | {statistics.median(pp):.1f} ({max(pp):.1f}) | "
                  f"{statistics.median(tg):.2f} ({max(tg):.2f}) |")
        f = [statistics.median(r["tg"] for r in res[("flashmoe", t)]),
             statistics.median(r["pp"] for r in res[("flashmoe", t)])]
        g = [statistics.median(r["tg"] for r in res[("llama.cpp", t)]),
             statistics.median(r["pp"] for r in res[("llama.cpp", t)])]
        print(f"| flashmoe / llama.cpp | {t} | {f[1] / g[1]:.2f}x | {f[0] / g[0]:.2f}x |")


def llama_depth(path, threads, depth, n_gen, seed, kv):
    m = Llama(path, depth + n_gen + 16, threads, kv=kv, flash_attn=1)
    ids = bench_ids(seed, depth, m.n_vocab)
    logits = m.decode(ids, 0)  # the context, untimed
    L.llama_perf_context_reset(m.ctx)
    for i in range(n_gen):
        m.decode([int(np.argmax(logits))], depth + i)
        logits = m.row(-1)
    perf = L.llama_perf_context(m.ctx)
    m.close()
    return perf.n_eval / (perf.t_eval_ms / 1e3)


def flashmoe_depth(path, threads, depth, n_gen, seed, kv):
    k, _, v = kv.partition("/")
    out = subprocess.run([FLASHMOE, "bench", "-m", path, "-p", "32", "-n", str(n_gen), "-d",
                          str(depth), "-t", str(threads), "--seed", str(seed), "--json",
                          "-ctk", k, "-ctv", v or k],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["tg_tok_s"]


def cmd_depth(a):
    res = {}
    # one untimed run of each engine first (page cache, llama.cpp's weight repacking)
    llama_depth(a.model, a.threads, 64, 2, a.seed, a.llama_kv.split(",")[0])
    flashmoe_depth(a.model, a.threads, 64, 2, a.seed, a.flashmoe_kv.split(",")[0])
    for rep in range(a.reps):
        for d in [int(x) for x in a.depths.split(",")]:
            for kv in a.llama_kv.split(","):
                tg = llama_depth(a.model, a.threads, d, a.n_gen, a.seed, kv)
                res.setdefault((d, "llama.cpp", kv), []).append(tg)
                print(json.dumps({"engine": "llama.cpp", "depth": d, "kv": kv, "rep": rep,
                                  "tg": tg}), flush=True)
            for kv in a.flashmoe_kv.split(","):
                tg = flashmoe_depth(a.model, a.threads, d, a.n_gen, a.seed, kv)
                res.setdefault((d, "flashmoe", kv), []).append(tg)
                print(json.dumps({"engine": "flashmoe", "depth": d, "kv": kv, "rep": rep,
                                  "tg": tg}), flush=True)
    print(f"\n| depth | engine | KV (K/V) | tg{a.n_gen} tok/s median (best) |")
    print("| --- | --- | --- | --- |")
    for (d, eng, kv), v in res.items():
        print(f"| {d} | {eng} | {kv} | {statistics.median(v):.2f} ({max(v):.2f}) |")


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def cmd_logits(a):
    # exact attention on both sides by default: llama.cpp's F16 KV cache and
    # its flash-attention kernel round the query (and the attention sums) to
    # F16, which moves logits by ~1e-3 relative (1e-2 on random weights);
    # flashmoe keeps queries and sums in F32 for either cache type
    m = Llama(a.model, a.tokens + 8, 2, repack=a.llama_repack == "on", kv=a.kv,
              flash_attn=-1 if a.llama_defaults else 0)
    if a.text:
        out = subprocess.run([FLASHMOE, "tokenize", "-m", a.model, "-f", a.text, "--ids"],
                             check=True, capture_output=True, text=True).stdout
        ids = [int(t) for t in out.split()][:a.tokens]
    else:
        ids = bench_ids(a.seed, a.tokens, m.n_vocab)
    ref = m.decode(ids, 0, all_logits=True)
    m.close()
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "l.f32")
        subprocess.run([FLASHMOE, "logits", "-m", a.model, "--token-ids",
                        ",".join(map(str, ids)), "--out", out, "-t", "2", "--kv-type", a.kv],
                       check=True, capture_output=True)
        got = np.fromfile(out, dtype=np.float32).reshape(len(ids), -1)
    rel = np.abs(got - ref).max(axis=1) / np.maximum(np.abs(ref).max(axis=1), 1e-30)
    lp, lq = log_softmax(ref), log_softmax(got)
    kl = (np.exp(lp) * (lp - lq)).sum(axis=1)
    top = (got.argmax(axis=1) == ref.argmax(axis=1)).mean()
    print(json.dumps({"model": a.model, "tokens": len(ids),
                      "max_rel_err": float(rel.max()), "median_rel_err": float(np.median(rel)),
                      "kl_mean": float(kl.mean()), "kl_max": float(kl.max()),
                      "top1_agree": float(top)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed")
    s.add_argument("model")
    s.add_argument("--threads", default="1,2")
    s.add_argument("-p", dest="n_prompt", type=int, default=512)
    s.add_argument("-n", dest="n_gen", type=int, default=128)
    s.add_argument("--reps", type=int, default=3)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--llama-repack", choices=("on", "off"), default="on",
                   help="llama.cpp's weight repacking (use_extra_bufts; on is its default)")
    s.add_argument("--flashmoe-args", default="", help="extra flags for flashmoe bench, e.g. '--mem 3G'")
    s.add_argument("--dropcache", action="store_true",
                   help="evict the file from the page cache before every run (no warm-up run)")
    dp = sub.add_parser("depth")
    dp.add_argument("model")
    dp.add_argument("--depths", default="1024,8192")
    dp.add_argument("-n", dest="n_gen", type=int, default=8)
    dp.add_argument("--reps", type=int, default=1)
    dp.add_argument("--threads", type=int, default=2)
    dp.add_argument("--seed", type=int, default=1)
    dp.add_argument("--llama-kv", default="f16,q8_0")
    dp.add_argument("--flashmoe-kv", default="f16,q8_0,tq4,tq3.5,q8_0/tq4")
    g = sub.add_parser("logits")
    g.add_argument("model")
    g.add_argument("--tokens", type=int, default=64)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--text", help="take the token ids from this text file")
    g.add_argument("--kv", default="f32", choices=("f16", "f32"),
                   help="the KV cache type of both engines (llama.cpp's default is f16)")
    g.add_argument("--llama-defaults", action="store_true",
                   help="llama.cpp's flash attention on its default (auto) instead of off")
    g.add_argument("--llama-repack", choices=("on", "off"), default="on")
    a = ap.parse_args()
    global QUIET  # the callback must outlive every llama.cpp call
    QUIET = L.llama_log_callback(lambda level, text, data: None)
    L.llama_log_set(QUIET, ctypes.c_void_p())
    {"speed": cmd_speed, "logits": cmd_logits, "depth": cmd_depth}[a.cmd](a)


if __name__ == "__main__":
    main()
