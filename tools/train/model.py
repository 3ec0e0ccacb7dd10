"""model.py: the qwen3moe model in PyTorch, written from architectures.md §5.

Per token: h = Emb[token]; per layer: x = RMSNorm(h); GQA attention with
per-head q/k RMSNorm before NeoX RoPE, scale 1/sqrt(hd), causal softmax;
h += Wo o; x = RMSNorm(h); router softmax over E experts (fp32), top-K,
renormalise; h += sum_e w_e Down_e(silu(Gate_e x) * Up_e x); finally
logits = Emb RMSNorm(h) (tied embeddings: the output matrix is the token
embedding, so the GGUF has no output.weight).

Active vocabulary. The table has one row per id of the padded Qwen3 vocabulary
(151,936), but the Brown corpus uses only ~34,000 of them. Only the rows of ids
in `active_ids` are parameters; every other row is fixed at zero, so its logit is
exactly 0 for every input. The loss is still the full-vocabulary cross entropy:
log Z = logaddexp(logsumexp(active logits), log(n_vocab - n_active)), the
second term being the n_vocab - n_active logits that are 0. The exported GGUF
holds all 151,936 rows (the zero ones included), and flashmoe's full softmax
computes the same numbers; training just skips the arithmetic on rows that
cannot change. A model read back from a GGUF uses active_ids = all ids.

Tensor layouts match GGUF (architectures.md §9.3): a PyTorch [A, B, C] is
ggml ne {C, B, A}; experts are stacked [E, I, H] (gate, up) and [E, H, I] (down).
"""
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    n_layer: int = 4
    n_embd: int = 256
    n_head: int = 4
    n_head_kv: int = 2
    head_dim: int = 64
    n_expert: int = 16
    n_expert_used: int = 4
    n_ff_exp: int = 256
    n_vocab: int = 151936
    n_ctx: int = 512
    rope_theta: float = 10000.0
    rms_eps: float = 1e-6
    dropout: float = 0.0  # training only: on the embedding and each block's outputs

    def to_dict(self):
        return asdict(self)


def rms_norm(x, w, eps):
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (y * w.float()).to(x.dtype)


def rope_cache(cfg, n_pos, device=None):
    """cos, sin [n_pos, hd/2] for NeoX RoPE over all hd dims (§5.1)."""
    half = cfg.head_dim // 2
    inv_freq = cfg.rope_theta ** (-torch.arange(half, dtype=torch.float64) * 2 / cfg.head_dim)
    ang = torch.arange(n_pos, dtype=torch.float64)[:, None] * inv_freq[None, :]
    return torch.cos(ang).float().to(device), torch.sin(ang).float().to(device)


def rope(x, cos, sin):
    """x [B, T, heads, hd]; pairs (i, i + hd/2)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c, s = cos[None, :, None, :].to(x.dtype), sin[None, :, None, :].to(x.dtype)
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        q_dim, kv_dim = cfg.n_head * cfg.head_dim, cfg.n_head_kv * cfg.head_dim
        self.wq = nn.Parameter(torch.empty(q_dim, cfg.n_embd))   # attn_q    ne {H, nh*hd}
        self.wk = nn.Parameter(torch.empty(kv_dim, cfg.n_embd))  # attn_k    ne {H, nkv*hd}
        self.wv = nn.Parameter(torch.empty(kv_dim, cfg.n_embd))  # attn_v    ne {H, nkv*hd}
        self.wo = nn.Parameter(torch.empty(cfg.n_embd, q_dim))   # attn_output ne {nh*hd, H}
        self.q_norm = nn.Parameter(torch.ones(cfg.head_dim))     # attn_q_norm {hd}
        self.k_norm = nn.Parameter(torch.ones(cfg.head_dim))     # attn_k_norm {hd}

    def forward(self, x, cos, sin):
        cfg = self.cfg
        B, T, _ = x.shape
        q = F.linear(x, self.wq).view(B, T, cfg.n_head, cfg.head_dim)
        k = F.linear(x, self.wk).view(B, T, cfg.n_head_kv, cfg.head_dim)
        v = F.linear(x, self.wv).view(B, T, cfg.n_head_kv, cfg.head_dim)
        q = rope(rms_norm(q, self.q_norm, cfg.rms_eps), cos, sin)
        k = rope(rms_norm(k, self.k_norm, cfg.rms_eps), cos, sin)
        # GQA: query head a reads kv head a // (nh / nkv), as enable_gqa does
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                           v.transpose(1, 2), is_causal=True,
                                           enable_gqa=cfg.n_head != cfg.n_head_kv)
        return F.linear(o.transpose(1, 2).reshape(B, T, -1), self.wo)


class MoE(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        E, I, H = cfg.n_expert, cfg.n_ff_exp, cfg.n_embd
        self.router = nn.Parameter(torch.empty(E, H))    # ffn_gate_inp  ne {H, E}
        self.w_gate = nn.Parameter(torch.empty(E, I, H))  # ffn_gate_exps ne {H, I, E}
        self.w_up = nn.Parameter(torch.empty(E, I, H))    # ffn_up_exps   ne {H, I, E}
        self.w_down = nn.Parameter(torch.empty(E, H, I))  # ffn_down_exps ne {I, H, E}

    def forward(self, x):
        """x [N, H] -> (y [N, H], load-balancing loss)."""
        cfg = self.cfg
        E, K = cfg.n_expert, cfg.n_expert_used
        probs = torch.softmax(F.linear(x, self.router).float(), dim=-1)  # [N, E]
        w, idx = torch.topk(probs, K, dim=-1)
        w = w / w.sum(dim=-1, keepdim=True)
        flat = idx.reshape(-1)
        order = torch.argsort(flat, stable=True)
        tok = order // K                       # token of each sorted assignment
        counts = torch.bincount(flat, minlength=E)
        xs = x[tok]
        outs, start = [], 0
        for e, n in enumerate(counts.tolist()):
            if n == 0:
                continue
            seg = xs[start:start + n]
            h = F.silu(F.linear(seg, self.w_gate[e])) * F.linear(seg, self.w_up[e])
            outs.append(F.linear(h, self.w_down[e]))
            start += n
        out = torch.cat(outs) * w.reshape(-1)[order, None].to(x.dtype)
        y = torch.zeros_like(x).index_add_(0, tok, out)
        # Switch-style balance: E * sum_e (share of assignments) * (mean prob)
        frac = counts.float() / flat.numel()
        aux = E * torch.sum(frac * probs.mean(dim=0))
        return y, aux


class TiedSoftmaxCE(torch.autograd.Function):
    """Mean cross entropy of logits = x W^T over the active rows W plus
    n_inactive logits fixed at 0 (targets >= n_active have logit 0).
    The big matmuls (logits; d/dx and d/dW in backward) run once over all N
    rows in mm_dtype (bf16: ~3x faster than fp32 on AVX512-BF16 CPUs; logits
    and gradients rounded to bf16 as under autocast); the softmax runs in fp32 over chunks of
    rows that fit in cache, and backward turns the stored logits into
    d CE / d logits in place."""
    CHUNK = 128

    @staticmethod
    def forward(ctx, x, w, tgt, n_inactive, mm_dtype):
        n, va = x.shape[0], w.shape[0]
        xm, wm = x.to(mm_dtype), w.to(mm_dtype)
        logits = torch.mm(xm, wm.t())                             # [n, va]
        lse = torch.empty(n, dtype=torch.float32)
        tgt_logit = torch.zeros(n, dtype=torch.float32)
        active = tgt < va
        for r0 in range(0, n, TiedSoftmaxCE.CHUNK):
            r1 = min(n, r0 + TiedSoftmaxCE.CHUNK)
            lg = logits[r0:r1].float()
            l = torch.logsumexp(lg, dim=1)
            if n_inactive:
                l = torch.logaddexp(l, torch.tensor(math.log(n_inactive)))
            lse[r0:r1] = l
            t = tgt[r0:r1].clamp(max=va - 1)
            tgt_logit[r0:r1] = torch.where(active[r0:r1], lg.gather(1, t[:, None])[:, 0], 0.0)
        ctx.save_for_backward(xm, wm, tgt, lse, logits)
        ctx.dtypes = (x.dtype, w.dtype)
        return (lse - tgt_logit).mean()

    @staticmethod
    def backward(ctx, g):
        xm, wm, tgt, lse, logits = ctx.saved_tensors
        n, va = logits.shape
        scale = g.float() / n
        for r0 in range(0, n, TiedSoftmaxCE.CHUNK):
            r1 = min(n, r0 + TiedSoftmaxCE.CHUNK)
            p = torch.exp_(logits[r0:r1].float().sub_(lse[r0:r1, None]))  # softmax
            t = tgt[r0:r1]
            rows = torch.nonzero(t < va)[:, 0]
            p[rows, t[rows]] -= 1.0                                       # - one-hot
            logits[r0:r1] = p.mul_(scale)
        gx = torch.mm(logits, wm).to(ctx.dtypes[0])
        gw = torch.mm(logits.t(), xm).to(ctx.dtypes[1])
        return gx, gw, None, None, None


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.attn_norm = nn.Parameter(torch.ones(cfg.n_embd))
        self.attn = Attention(cfg)
        self.ffn_norm = nn.Parameter(torch.ones(cfg.n_embd))
        self.moe = MoE(cfg)

    def forward(self, h, cos, sin):
        eps, p = self.cfg.rms_eps, self.cfg.dropout
        a = self.attn(rms_norm(h, self.attn_norm, eps), cos, sin)
        h = h + F.dropout(a, p, self.training)
        B, T, H = h.shape
        y, aux = self.moe(rms_norm(h, self.ffn_norm, eps).reshape(B * T, H))
        return h + F.dropout(y.view(B, T, H), p, self.training), aux


class Qwen3Moe(nn.Module):
    def __init__(self, cfg, active_ids=None):
        super().__init__()
        self.cfg = cfg
        if active_ids is None:
            active_ids = torch.arange(cfg.n_vocab)
        active_ids = torch.as_tensor(active_ids, dtype=torch.long).sort().values
        assert active_ids.numel() == torch.unique(active_ids).numel()
        assert int(active_ids[-1]) < cfg.n_vocab
        n_active = active_ids.numel()
        # row index of each id in `embed`; inactive ids -> the zero row n_active
        id_map = torch.full((cfg.n_vocab,), n_active, dtype=torch.long)
        id_map[active_ids] = torch.arange(n_active)
        self.register_buffer("active_ids", active_ids)
        self.register_buffer("id_map", id_map)
        self.embed = nn.Parameter(torch.empty(n_active, cfg.n_embd))  # rows of token_embd
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.output_norm = nn.Parameter(torch.ones(cfg.n_embd))
        cos, sin = rope_cache(cfg, cfg.n_ctx)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def init_weights(self, seed):
        g = torch.Generator().manual_seed(seed)
        std, proj_std = 0.02, 0.02 / math.sqrt(2 * self.cfg.n_layer)
        for name, p in self.named_parameters():
            if p.dim() == 1:
                continue  # norms stay 1
            s = proj_std if name.endswith(("wo", "w_down")) else std
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * s)

    def n_inactive(self):
        return self.cfg.n_vocab - self.embed.shape[0]

    def hidden(self, tokens):
        """tokens [B, T] (any ids) -> final normed hidden [B, T, H] and aux loss."""
        T = tokens.shape[1]
        if T > self.rope_cos.shape[0]:
            cos, sin = rope_cache(self.cfg, T, tokens.device)
        else:
            cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        table = torch.cat([self.embed, self.embed.new_zeros(1, self.cfg.n_embd)])
        h = F.dropout(table[self.id_map[tokens]], self.cfg.dropout, self.training)
        aux = h.new_zeros((), dtype=torch.float32)
        for blk in self.blocks:
            h, a = blk(h, cos, sin)
            aux = aux + a
        return rms_norm(h, self.output_norm, self.cfg.rms_eps), aux / len(self.blocks)

    def loss(self, tokens, targets, mm_dtype=torch.bfloat16):
        """Mean full-vocabulary cross entropy (nats) and the mean aux loss.
        mm_dtype: the type of the output matmuls' inputs and outputs (bf16:
        rounded as autocast rounds them; the matmul accumulates in fp32)."""
        x, aux = self.hidden(tokens)
        tgt = self.id_map[targets.reshape(-1)]
        ce = TiedSoftmaxCE.apply(x.reshape(-1, self.cfg.n_embd), self.embed, tgt,
                                 self.n_inactive(), mm_dtype)
        return ce, aux

    @torch.no_grad()
    def logits(self, tokens):
        """Full-vocabulary logits [B, T, n_vocab] in fp32 (inactive ids: 0)."""
        x, _ = self.hidden(tokens)
        act = F.linear(x, self.embed).float()
        if not self.n_inactive():
            return act
        full = act.new_zeros(*act.shape[:-1], self.cfg.n_vocab)
        full[..., self.active_ids] = act
        return full

    @torch.no_grad()
    def full_embedding(self):
        """token_embd [n_vocab, H] with zero rows for inactive ids."""
        full = self.embed.new_zeros(self.cfg.n_vocab, self.cfg.n_embd)
        full[self.active_ids] = self.embed
        return full

    def param_counts(self):
        """(stored in the GGUF, active per token) parameter counts."""
        cfg = self.cfg
        emb = cfg.n_vocab * cfg.n_embd
        per_layer_dense = sum(p.numel() for n, p in self.blocks[0].named_parameters()
                              if not n.startswith("moe.w_"))
        expert = 3 * cfg.n_embd * cfg.n_ff_exp
        total = emb + cfg.n_embd + cfg.n_layer * (per_layer_dense + cfg.n_expert * expert)
        active = emb + cfg.n_embd + cfg.n_layer * (per_layer_dense + cfg.n_expert_used * expert)
        return total, active
