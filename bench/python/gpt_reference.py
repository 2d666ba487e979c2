#!/usr/bin/env python3
"""PyTorch reference for `imagine train text`: the same GPT and the same training recipe.

The point is a fair side-by-side: same architecture, same initialisation, same byte-level
tokens and data split, same batch/context, same AdamW + warm-up + cosine schedule, same
gradient clipping, same thread count, and tokens/s measured the same way (the sum of
optimizer-step times, evaluation excluded). Written for Debian's python3-torch 1.13,
which has no fused scaled-dot-product attention, so attention is computed by hand with a
causal mask, exactly as imagine does on LibTorch 1.13.

Random numbers: the weights are initialised from torch's CPU generator seeded with
--seed, consumed in the same order as imagine does (module construction, then the GPT-2
re-initialisation over the parameters in registration order), so with the same LibTorch
the initial weights are bit-identical. Training windows and evaluation batches are drawn
with a port of imagine's xoshiro256** data RNG (--data-rng imagine, the default), so both
see exactly the same batches; the runs then differ only by floating-point rounding
(imagine's AdamW is its own code, and thread scheduling may reorder reductions).
--data-rng torch draws them with a torch generator instead.

What differs on purpose: no checkpoints are written (imagine writes one at every
evaluation), and no sample text is generated at evaluations.

Progress goes to stderr; the last line on stdout is one JSON object:
  {"impl": "pytorch-python", "steps": .., "seconds": .., "train_seconds": ..,
   "tokens_per_s": .., "best_val_loss": .., ...}
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------- model


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (torch 1.13's nn.LayerNorm cannot drop only the bias)."""

    def __init__(self, n, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    sdpa = False  # --attention sdpa: torch's fused kernel (2.0+), as imagine uses on LibTorch 2.x

    def __init__(self, n_embd, n_head, dropout, bias):
        super().__init__()
        assert n_embd % n_head == 0
        self.n_head, self.n_embd, self.dropout = n_head, n_embd, dropout
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x):
        B, T, C = x.shape
        hd = C // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, hd).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.n_head, hd).transpose(1, 2)
        v = v.view(B, T, self.n_head, hd).transpose(1, 2)
        if CausalSelfAttention.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                               is_causal=True)
            return self.resid_drop(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))
        # Manual masked softmax attention (no SDPA in 1.13), the mask built per call as ours.
        att = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        if T > 1:
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            att = att.masked_fill(mask, float("-inf"))
        att = torch.softmax(att, dim=-1)
        if self.training and self.dropout > 0:
            att = F.dropout(att, self.dropout, True)
        y = torch.matmul(att, v)  # (B, H, T, D)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, n_embd, dropout, bias):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.c_proj(F.gelu(self.c_fc(x))))  # exact (erf) GELU


class Block(nn.Module):
    def __init__(self, n_embd, n_head, dropout, bias):
        super().__init__()
        self.ln_1 = LayerNorm(n_embd, bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = LayerNorm(n_embd, bias)
        self.mlp = MLP(n_embd, dropout, bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, dropout, bias):
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList([Block(n_embd, n_head, dropout, bias) for _ in range(n_layer)])
        self.ln_f = LayerNorm(n_embd, bias)
        # GPT-2 initialisation: N(0, 0.02), residual projections N(0, 0.02/sqrt(2 n_layer)),
        # zero biases, LayerNorm ones/zeros. The LM head is tied to wte (no own weights).
        proj_std = 0.02 / math.sqrt(2.0 * n_layer)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if "ln_" in name:
                    continue
                if p.dim() == 1:
                    p.zero_()
                elif name.endswith("c_proj.weight"):
                    p.normal_(0.0, proj_std)
                else:
                    p.normal_(0.0, 0.02)

    def num_parameters(self, exclude_positions=True):
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if exclude_positions else n

    def forward(self, idx):
        T = idx.size(1)
        assert T <= self.block_size
        pos = torch.arange(0, T, dtype=torch.long, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.h:
            x = block(x)
        x = self.ln_f(x)
        return F.linear(x, self.wte.weight)  # (B, T, vocab)

    def loss(self, idx, targets):
        logits = self.forward(idx).float()  # float32 loss even under bf16 autocast, as imagine
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


# ----------------------------------------------------------------------------- recipe


def lr_at(step, lr, min_lr, warmup, decay_steps):
    """Linear warm-up then cosine decay to min_lr at decay_steps; `step` counts from 0."""
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    if step >= decay_steps:
        return min_lr
    ratio = (step - warmup) / max(1, decay_steps - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


_M64 = (1 << 64) - 1


class Xoshiro256:
    """imagine's data RNG (src/core/runtime.cpp): xoshiro256** seeded by splitmix64."""

    def __init__(self, seed):
        x = seed & _M64
        self.s = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & _M64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def _rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & _M64

    def next(self):
        s = self.s
        result = (self._rotl((s[1] * 5) & _M64, 7) * 9) & _M64
        t = (s[1] << 17) & _M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def below(self, n):
        limit = _M64 - _M64 % n  # rejection sampling: exactly uniform
        while True:
            x = self.next()
            if x < limit:
                return x % n


def make_rng(kind, seed):
    if kind == "imagine":
        return Xoshiro256(seed)
    return torch.Generator().manual_seed(seed & 0x7FFFFFFFFFFFFFFF)


def get_batch(tokens, rng, batch, block):
    """Random windows of block + 1 tokens: inputs are the first block, targets the last."""
    n = tokens.numel()
    if isinstance(rng, Xoshiro256):
        starts = torch.tensor([rng.below(n - block) for _ in range(batch)], dtype=torch.long)
    else:
        starts = torch.randint(0, n - block, (batch,), generator=rng)
    windows = tokens[starts.unsqueeze(1) + torch.arange(block + 1)]  # (batch, block + 1)
    return windows[:, :block].contiguous(), windows[:, 1:].contiguous()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="text file (read as bytes, one token per byte)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=12)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--bias", action="store_true", help="biases in Linear and LayerNorm layers")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--warmup-steps", type=int, default=100)
    ap.add_argument("--decay-steps", type=int, default=0, help="0 = --steps")
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.99)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--eval-every", type=int, default=250, help="0 = only at the end")
    ap.add_argument("--eval-iters", type=int, default=20)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0, help="0 = os.cpu_count()")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16 = torch.autocast('cpu', torch.bfloat16) around forward passes, as imagine's")
    ap.add_argument("--data-rng", choices=["imagine", "torch"], default="imagine",
                    help="imagine: the same batches as imagine (port of its RNG); torch: a torch generator")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--attention", choices=["manual", "sdpa"], default="manual",
                    help="sdpa = F.scaled_dot_product_attention (torch 2.0+)")
    ap.add_argument("--fused-adamw", action="store_true", help="torch.optim.AdamW(fused=True) (CUDA, torch 2.0+)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (torch 2.0+)")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.attention == "sdpa" and not hasattr(F, "scaled_dot_product_attention"):
        sys.exit(f"error: torch {torch.__version__} has no scaled_dot_product_attention\nhint: use --attention manual")
    if args.compile and not hasattr(torch, "compile"):
        sys.exit(f"error: torch {torch.__version__} has no torch.compile\nhint: drop --compile")
    CausalSelfAttention.sdpa = args.attention == "sdpa"

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    threads = args.threads if args.threads > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    decay_steps = args.decay_steps if args.decay_steps > 0 else args.steps

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    # Data: the file's bytes; first (1 - val_fraction) for training, the rest for validation.
    with open(args.data, "rb") as f:
        raw = f.read()
    split = int(math.floor(len(raw) * (1.0 - args.val_fraction)))
    all_tokens = torch.frombuffer(bytearray(raw), dtype=torch.uint8).to(torch.long)
    train_tokens, val_tokens = all_tokens[:split].clone(), all_tokens[split:].clone()
    log(f"split: {train_tokens.numel()} training tokens, {val_tokens.numel()} validation tokens, byte tokens (256)")

    torch.manual_seed(args.seed)  # weight initialisation depends only on the seed
    model = GPT(256, args.block_size, args.n_layer, args.n_head, args.n_embd, args.dropout, args.bias)
    model.to(device)
    n_params = model.num_parameters()
    log(
        f"model: GPT {args.n_layer} layers, {args.n_head} heads, {args.n_embd} wide, context {args.block_size}, "
        f"{n_params} parameters; {torch.get_num_threads()} threads, torch {torch.__version__}, seed {args.seed}"
    )

    # AdamW: decoupled weight decay on matrices and embeddings (dim >= 2) only.
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(args.beta1, args.beta2),
        eps=1e-8,
        **({"fused": True} if args.fused_adamw else {}),
    )
    step_model = model
    # torch.compile traces forward(); the loss (float32 cross-entropy) is compiled with it.
    compiled_loss = torch.compile(model.loss) if args.compile else None

    data_gen = make_rng(args.data_rng, args.seed ^ 0x5EEDDA7A)

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def to_device(x, y):
        if device.type == "cpu":
            return x, y
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)

    @torch.no_grad()
    def evaluate():
        # Fixed batches per split (same data at every evaluation; training RNG untouched).
        model.eval()
        out = {}
        for name, toks, salt in (("val_loss", val_tokens, 0xE7A1), ("train_loss", train_tokens, 0x7A1E)):
            g = make_rng(args.data_rng, args.seed ^ salt)
            block = min(args.block_size, toks.numel() - 1)
            total = 0.0
            for _ in range(args.eval_iters):
                x, y = to_device(*get_batch(toks, g, args.batch_size, block))
                with autocast():
                    total += model.loss(x, y).item()
            out[name] = total / args.eval_iters
        model.train()
        return out

    evals = []
    best_val, best_step = float("inf"), 0
    train_seconds, tokens = 0.0, 0
    params = list(model.parameters())
    t_start = time.perf_counter()
    model.train()
    for step in range(args.steps):
        t0 = time.perf_counter()
        lr = lr_at(step, args.lr, args.min_lr, args.warmup_steps, decay_steps)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        loss_sum = 0.0
        for _ in range(args.grad_accum):
            x, y = to_device(*get_batch(train_tokens, data_gen, args.batch_size, args.block_size))
            with autocast():
                loss = step_model.loss(x, y) if not args.compile else compiled_loss(x, y)
            (loss / args.grad_accum).backward()
            loss_sum += loss.item()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, args.grad_clip)
        opt.step()
        sync()
        train_seconds += time.perf_counter() - t0
        tokens += args.batch_size * args.block_size * args.grad_accum
        done = step + 1
        if not math.isfinite(loss_sum):
            log(f"training diverged at step {done}")
            sys.exit(1)
        if done % args.log_every == 0:
            log(f"step {done}/{args.steps} loss {loss_sum / args.grad_accum:.4f} {tokens / train_seconds:.0f} tok/s")
        if (args.eval_every > 0 and done % args.eval_every == 0) or done == args.steps:
            m = evaluate()
            improved = m["val_loss"] < best_val
            if improved:
                best_val, best_step = m["val_loss"], done
            evals.append({"step": done, "elapsed_s": time.perf_counter() - t_start, **m})
            log(
                f"step {done}: val_loss {m['val_loss']:.4f} train_loss {m['train_loss']:.4f}"
                + (" (best)" if improved else "")
            )
    seconds = time.perf_counter() - t_start

    print(
        json.dumps(
            {
                "impl": "pytorch-python" + ("-compile" if args.compile else ""),
                "device": str(device),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "parameters": n_params,
                "steps": args.steps,
                "seconds": round(seconds, 3),
                "train_seconds": round(train_seconds, 3),
                "tokens_per_s": round(tokens / train_seconds, 1) if train_seconds > 0 else None,
                "best_val_loss": best_val if math.isfinite(best_val) else None,
                "best_step": best_step,
                "evals": evals,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
