#!/usr/bin/env python3
"""train.py: train the built-in demo model (qwen3moe, model.py) on the Brown
corpus prepared by prepare_data.py, on the CPU.

Reproducible: every random choice comes from --seed (weights, dropout masks;
the torch RNG state is checkpointed) and from (--seed, epoch) (data order), so
a run, or a run stopped and resumed from its checkpoint, computes the same
thing for the same thread count (thread count changes the order of float sums,
nothing else).

Run folder RUNS_DIR/RUN (common.py) holds:
  config.json   the arguments and the model config of the run
  log.tsv       one line per --log-every steps: step, tokens, train loss, aux,
                lr, tokens/s, elapsed s, held-out ppl (every --eval-every steps)
  ckpt.pt       the latest checkpoint (every --ckpt-minutes, at the end, and on
                SIGINT/SIGTERM); --resume continues from it
  final.pt      the weights at the end, for export_gguf.py and eval_ppl.py

Data order: the training ids are cut into windows of ctx+1 tokens starting at
a per-epoch random shift; each epoch visits its windows in a random order
(numpy default_rng([seed, epoch])). Sample i of the run is window i % n_win of
epoch i // n_win, so the data never depends on how the run was interrupted.

Optimiser: AdamW (0.9, 0.95), weight decay on matrices only, linear warm-up
then cosine decay to --min-lr-frac x --lr, gradient clipping at 1.0; loss =
cross entropy + --aux x load-balancing loss. The output matmul runs with bf16
inputs (--mm-dtype), the rest in fp32.
"""
import argparse
import json
import math
import os
import signal
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from model import Config, Qwen3Moe  # noqa: E402

# Named model configs. Sizes of the GGUF: see README.md.
CONFIGS = {
    # for tests of the pipeline: minutes, not hours
    "tiny": dict(n_layer=2, n_embd=64, n_head=2, n_head_kv=1, head_dim=32,
                 n_expert=8, n_expert_used=4, n_ff_exp=64),
    "h128": dict(n_layer=4, n_embd=128, n_head=4, n_head_kv=2, head_dim=32,
                 n_expert=16, n_expert_used=4, n_ff_exp=96),
    "h192": dict(n_layer=5, n_embd=192, n_head=4, n_head_kv=2, head_dim=64,
                 n_expert=16, n_expert_used=4, n_ff_exp=128),
    "h256": dict(n_layer=4, n_embd=256, n_head=4, n_head_kv=2, head_dim=64,
                 n_expert=16, n_expert_used=4, n_ff_exp=128),
    # the shipped model: every matrix's rows are a multiple of 256 elements, so
    # the experts can be requantized to the K-quants (Q6_K, Q4_K, Q2_K) for
    # docs/QUALITY.md; Q4_K experts + Q8_0 attention + Q4_0 embedding ~ 29.9 MB
    "k256": dict(n_layer=4, n_embd=256, n_head=4, n_head_kv=2, head_dim=64,
                 n_expert=16, n_expert_used=4, n_ff_exp=256),
    # the routing-trace model (issue 16): Qwen3-30B-A3B's routing shape (128
    # experts, 8 routed, expert width ~ 3/8 of hidden) at a size one core
    # trains in about an hour; not shipped, its traces feed `flashmoe cache-sim`
    "r128": dict(n_layer=4, n_embd=128, n_head=4, n_head_kv=2, head_dim=32,
                 n_expert=128, n_expert_used=8, n_ff_exp=48),
}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="train the flashmoe demo model")
    ap.add_argument("--run", required=True, help="run name (folder under the runs cache)")
    ap.add_argument("--config", default="h192", choices=sorted(CONFIGS))
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=8, help="sequences per step")
    ap.add_argument("--ctx", type=int, default=512, help="training sequence length")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--aux", type=float, default=0.01, help="load-balancing loss weight")
    ap.add_argument("--dropout", type=float, default=0.1,
                    help="dropout on the embedding and block outputs (training only)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mm-dtype", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--ckpt-minutes", type=float, default=10.0)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-chunks", type=int, default=16,
                    help="held-out windows of --ctx tokens scored at each eval")
    ap.add_argument("--resume", action="store_true", help="continue from RUN/ckpt.pt")
    ap.add_argument("--bench", type=int, default=0,
                    help="time this many steps (no files written) and exit")
    ap.add_argument("--data", default=common.DATA_DIR)
    return ap.parse_args(argv)


class Batches:
    """Deterministic windows: sample i -> (epoch, window) as in the file doc."""

    def __init__(self, ids, ctx, seed):
        self.ids, self.ctx, self.seed = ids, ctx, seed
        self.n_win = (len(ids) - 1) // ctx - 1
        self._epoch, self._starts = -1, None

    def starts(self, epoch):
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch])
            shift = int(rng.integers(0, self.ctx))
            self._starts = shift + self.ctx * rng.permutation(self.n_win)
            self._epoch = epoch
        return self._starts

    def get(self, step, batch):
        rows = []
        for i in range(step * batch, (step + 1) * batch):
            s = int(self.starts(i // self.n_win)[i % self.n_win])
            rows.append(self.ids[s:s + self.ctx + 1])
        w = torch.from_numpy(np.stack(rows).astype(np.int64))
        return w[:, :-1], w[:, 1:]


def lr_at(args, step):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = (step - args.warmup) / max(1, args.steps - args.warmup)
    lo = args.lr * args.min_lr_frac
    return lo + (args.lr - lo) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def make_optimizer(model, args):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                              {"params": other, "weight_decay": 0.0}],
                             lr=args.lr, betas=(0.9, 0.95), eps=1e-8)


def save_atomic(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def heldout_ppl(model, ids, ctx, max_chunks):
    import eval_ppl
    r = eval_ppl.perplexity(model, ids, ctx, max_chunks=max_chunks, progress=False)
    return r["ppl"]


def build(args, active_ids):
    cfg = Config(**CONFIGS[args.config], n_ctx=args.ctx, dropout=args.dropout)
    model = Qwen3Moe(cfg, active_ids)
    model.init_weights(args.seed)
    return cfg, model


def train_steps(args, model, opt, data, start_step, state, on_log, stop):
    """Run steps [start_step, args.steps); state: dict updated in place."""
    mm_dtype = torch.bfloat16 if args.mm_dtype == "bf16" else torch.float32
    t_last, tok_last = time.time(), 0
    for step in range(start_step, args.steps):
        if stop["now"]:
            return step
        lr = lr_at(args, step)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = data.get(step, args.batch)
        model.train()
        loss, aux = model.loss(x, y, mm_dtype=mm_dtype)
        (loss + args.aux * aux).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        state["tokens"] += x.numel()
        tok_last += x.numel()
        state["loss_sum"] += loss.item()
        state["aux_sum"] += aux.item()
        state["n_sum"] += 1
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            now = time.time()
            state["elapsed_s"] += now - t_last
            on_log(step + 1, lr, tok_last / max(now - t_last, 1e-9))
            t_last, tok_last = now, 0
    return args.steps


def bench(args, ids, active_ids):
    cfg, model = build(args, active_ids)
    opt = make_optimizer(model, args)
    data = Batches(ids, args.ctx, args.seed)
    mm_dtype = torch.bfloat16 if args.mm_dtype == "bf16" else torch.float32
    times, cpu = [], []
    for step in range(args.bench):
        t0, c0 = time.time(), time.process_time()
        x, y = data.get(step, args.batch)
        loss, aux = model.loss(x, y, mm_dtype=mm_dtype)
        (loss + args.aux * aux).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.time() - t0)
        cpu.append(time.process_time() - c0)
    skip = 2 if len(times) > 4 else 0
    dt = float(np.median(times[skip:]))
    dc = float(np.median(cpu[skip:]))
    total, active = model.param_counts()
    print(f"bench {args.config} threads {args.threads} batch {args.batch}x{args.ctx}: "
          f"{args.batch * args.ctx / dt:.0f} tokens/s wall, {args.batch * args.ctx / dc:.0f} "
          f"tokens per CPU-second (median of {len(times) - skip} steps: {dt:.2f} s wall, "
          f"{dc:.2f} s CPU per step), params {total / 1e6:.2f} M stored, "
          f"{(total - cfg.n_vocab * cfg.n_embd) / 1e6:.2f} M without the embedding, "
          f"{(active - cfg.n_vocab * cfg.n_embd) / 1e6:.2f} M active per token "
          f"without it; loss after {len(times)} steps {loss.item():.3f}")


def main(argv=None):
    args = parse_args(argv)
    common.set_threads(args.threads)
    ids = np.fromfile(os.path.join(args.data, "brown-train.u32"), dtype="<u4")
    held = np.fromfile(os.path.join(args.data, "brown-heldout.u32"), dtype="<u4")
    active_ids = np.unique(ids).astype(np.int64)
    if args.bench:
        return bench(args, ids, active_ids)
    run_dir = os.path.join(common.RUNS_DIR, args.run)
    ckpt_path = os.path.join(run_dir, "ckpt.pt")
    os.makedirs(run_dir, exist_ok=True)
    cfg, model = build(args, active_ids)
    opt = make_optimizer(model, args)
    torch.manual_seed(args.seed)  # dropout masks
    state = dict(tokens=0, elapsed_s=0.0, loss_sum=0.0, aux_sum=0.0, n_sum=0, history=[])
    start = 0
    if args.resume:
        ck = torch.load(ckpt_path, weights_only=False)
        if ck["args"]["config"] != args.config or ck["args"]["seed"] != args.seed:
            sys.exit(f"train: {ckpt_path} was made with --config {ck['args']['config']} "
                     f"--seed {ck['args']['seed']}")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        torch.set_rng_state(ck["torch_rng"])  # dropout masks continue as they would have
        state, start = ck["state"], ck["step"]
        print(f"resumed {ckpt_path} at step {start}", flush=True)
    elif os.path.exists(ckpt_path):
        sys.exit(f"train: {ckpt_path} exists; pass --resume or choose another --run")
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(dict(args=vars(args), model=cfg.to_dict(), n_active=len(active_ids),
                       train_tokens=len(ids)), f, indent=1)
    total, act = model.param_counts()
    print(f"run {run_dir}: config {args.config} {cfg.to_dict()}\n"
          f"params {total / 1e6:.2f} M stored ({act / 1e6:.2f} M active per token); "
          f"{len(active_ids)} of {cfg.n_vocab} embedding rows trained; "
          f"{len(ids)} training tokens, {args.steps} steps x {args.batch * args.ctx} tokens "
          f"= {args.steps * args.batch * args.ctx / len(ids):.2f} epochs", flush=True)

    stop = {"now": False}

    def on_signal(signum, frame):
        stop["now"] = True
        print(f"signal {signum}: saving a checkpoint and stopping", flush=True)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    log = open(os.path.join(run_dir, "log.tsv"), "a")
    if not args.resume:
        log.write("step\ttokens\tloss\taux\tlr\ttok_s\telapsed_s\theldout_ppl\n")
    last_ckpt = [time.time()]

    def checkpoint(step):
        save_atomic(dict(model=model.state_dict(), opt=opt.state_dict(), step=step,
                         state=state, args=vars(args), cfg=cfg.to_dict(),
                         torch_rng=torch.get_rng_state()), ckpt_path)
        last_ckpt[0] = time.time()

    def on_log(step, lr, tok_s):
        loss = state["loss_sum"] / state["n_sum"]
        aux = state["aux_sum"] / state["n_sum"]
        state["loss_sum"] = state["aux_sum"] = 0.0
        state["n_sum"] = 0
        ppl = ""
        if step % args.eval_every == 0 or step == args.steps:
            model.eval()
            ppl = f"{heldout_ppl(model, held, args.ctx, args.eval_chunks):.3f}"
        state["history"].append((step, loss))
        print(f"step {step:6d}  loss {loss:.4f}  aux {aux:.3f}  lr {lr:.2e}  "
              f"{tok_s:6.0f} tok/s  {state['elapsed_s'] / 60:6.1f} min"
              + (f"  held-out ppl ({args.eval_chunks} windows) {ppl}" if ppl else ""),
              flush=True)
        log.write(f"{step}\t{state['tokens']}\t{loss:.5f}\t{aux:.4f}\t{lr:.3e}\t{tok_s:.0f}"
                  f"\t{state['elapsed_s']:.1f}\t{ppl}\n")
        log.flush()
        if time.time() - last_ckpt[0] > args.ckpt_minutes * 60:
            checkpoint(step)

    end = train_steps(args, model, opt, Batches(ids, args.ctx, args.seed), start, state,
                      on_log, stop)
    checkpoint(end)
    if end < args.steps:
        print(f"stopped at step {end}; continue with the same command and --resume")
        return
    model.eval()
    import eval_ppl
    r = eval_ppl.perplexity(model, held, args.ctx, progress=False)
    final = dict(model=model.state_dict(), cfg=cfg.to_dict(), args=vars(args),
                 train_tokens=len(ids), train_tokens_seen=state["tokens"],
                 elapsed_s=state["elapsed_s"],
                 final_train_loss=state["history"][-1][1] if state["history"] else None,
                 heldout=r)
    save_atomic(final, os.path.join(run_dir, "final.pt"))
    with open(os.path.join(run_dir, "result.json"), "w") as f:
        json.dump({k: v for k, v in final.items() if k != "model"}, f, indent=1)
    print(f"final: train loss {final['final_train_loss']:.4f}, {state['tokens']} tokens in "
          f"{state['elapsed_s'] / 3600:.2f} h; held-out (eval_ppl method, ctx {args.ctx}): "
          f"perplexity: {r['ppl']:.4f} over {r['n_scored']} scored tokens\n"
          f"weights: {os.path.join(run_dir, 'final.pt')}")


if __name__ == "__main__":
    main()
