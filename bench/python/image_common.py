"""Shared parts of the image references (vae_reference.py, dcgan_reference.py): the command
line, the IDX reader, imagine's data RNG, the architecture's geometry and the timed loop.

Leaves out everything but training: no evaluation (FID, ELBO), no checkpoints, no sample
grids. Written for Debian's python3-torch 1.13.
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

import torch

DEFAULT_DATA = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


# ----------------------------------------------------------------------------- geometry


class Geometry:
    """imagine's ImageArch sizes: a base x base map (7 for 28-pixel images, else 4) doubled by
    one stride-2 stage per power of two; stage i has min(width << i, 8 width) channels."""

    def __init__(self, channels, size, width, latent):
        if size not in (28, 32, 64, 128):
            raise SystemExit(f"error: --size must be 28, 32, 64 or 128, not {size}")
        self.channels, self.size, self.width, self.latent = channels, size, width, latent
        self.base = 7 if size == 28 else 4
        self.stages = 0
        s = self.base
        while s < size:
            s *= 2
            self.stages += 1

    def stage_channels(self, i):
        return min(self.width << i, 8 * self.width)

    @property
    def top(self):
        return self.stage_channels(self.stages - 1)


# ----------------------------------------------------------------------------- data


def read_idx_images(path):
    """uint8 tensor [N, 1, H, W] from an IDX3 file (gzipped or not)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic, n, h, w = struct.unpack(">IIII", raw[:16])
    if magic != 0x00000803:
        raise SystemExit(f"error: {path} is not an IDX3 image file (magic {magic:#x})")
    pixels = torch.frombuffer(bytearray(raw[16 : 16 + n * h * w]), dtype=torch.uint8)
    return pixels.view(n, 1, h, w).clone()


_M64 = (1 << 64) - 1


class DataRng:
    """imagine's data RNG (src/core/runtime.cpp): xoshiro256** with a splitmix64 seeding."""

    def __init__(self, seed):
        x = seed & _M64
        self.s = [0, 0, 0, 0]
        for i in range(4):
            x = (x + 0x9E3779B97F4A7C15) & _M64
            z = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
            self.s[i] = z ^ (z >> 31)

    def next(self):
        s0, s1, s2, s3 = self.s
        m = (s1 * 5) & _M64
        result = ((((m << 7) | (m >> 57)) & _M64) * 9) & _M64
        t = (s1 << 17) & _M64
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = ((s3 << 45) | (s3 >> 19)) & _M64
        self.s = [s0, s1, s2, s3]
        return result

    def below(self, n):
        limit = _M64 - _M64 % n  # rejection keeps it exactly uniform, as imagine's
        while True:
            x = self.next()
            if x < limit:
                return x % n


def draw_batches(kind, seed, count, batch, n):
    """All batch indices of the run, [count, batch] int64, drawn before the clock starts:
    uniform with replacement, like imagine's trainer. imagine draws its indices inside the
    step, but from a C++ generator whose cost is negligible; a Python generator is not."""
    if kind == "torch":
        g = torch.Generator().manual_seed(seed & 0x7FFFFFFFFFFFFFFF)
        return torch.randint(0, n, (count, batch), generator=g)
    rng = DataRng(seed)
    return torch.tensor([[rng.below(n) for _ in range(batch)] for _ in range(count)], dtype=torch.long)


def images_to_float(u8):
    return u8.to(torch.float32).div_(255.0)


# ----------------------------------------------------------------------------- run


def parser(description, width, latent, lr):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--data", default=DEFAULT_DATA, help="IDX3 training images (.gz or not)")
    ap.add_argument("--steps", type=int, default=300, help="training steps, warm-up included")
    ap.add_argument("--warmup-steps", type=int, default=5,
                    help="the first N steps are timed apart (images_per_s leaves them out)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = all cores)")
    ap.add_argument("--width", type=int, default=width, help="channels of the full-resolution layers")
    ap.add_argument("--latent", type=int, default=latent, help="latent size")
    ap.add_argument("--size", type=int, default=28, help="image size (only 28 with the IDX data)")
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16 = torch.autocast('cpu', torch.bfloat16) around the losses, as imagine's")
    ap.add_argument("--data-rng", choices=["imagine", "torch"], default="imagine",
                    help="imagine: the same batches as imagine (its RNG, seeded alike); torch: a torch generator")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    return ap


def to_device(args, host):
    """A batch on --device: on a GPU through pinned memory without blocking, as imagine copies."""
    if torch.device(args.device).type == "cpu":
        return host
    return host.pin_memory().to(args.device, non_blocking=True)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def setup(args):
    """Threads, data and the seed; returns (images uint8 [N,1,H,W], threads)."""
    threads = args.threads if args.threads > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    if args.warmup_steps < 0 or args.warmup_steps >= args.steps:
        raise SystemExit("error: --warmup-steps must be at least 0 and below --steps")
    images = read_idx_images(args.data)
    if images.size(2) != args.size or images.size(3) != args.size:
        raise SystemExit(f"error: {args.data} holds {images.size(2)}x{images.size(3)} images, not --size {args.size}")
    torch.manual_seed(args.seed)  # the weights and the noise come from torch's generator, as imagine's
    return images, torch.get_num_threads()


def autocast(args):
    return torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16, enabled=args.precision == "bf16")


def train(args, model_name, images, threads, params, step_fn):
    """Runs step_fn(step) for step = 0 .. steps-1, timing each call. step_fn returns a dict of
    losses (python floats). Prints progress on stderr and the JSON summary on stdout."""
    warm_s, timed_s, losses = 0.0, 0.0, {}
    log_every = max(1, args.steps // 10)
    for step in range(args.steps):
        t0 = time.perf_counter()
        losses = step_fn(step)
        dt = time.perf_counter() - t0
        if step < args.warmup_steps:
            warm_s += dt
        else:
            timed_s += dt
        if not all(math.isfinite(v) for v in losses.values()):
            log(f"error: training diverged at step {step + 1}: {losses}")
            sys.exit(1)
        if (step + 1) % log_every == 0 or step + 1 == args.steps:
            shown = " ".join(f"{k} {v:.4f}" for k, v in losses.items())
            log(f"step {step + 1}/{args.steps} {shown}")
    timed_steps = args.steps - args.warmup_steps
    rate = timed_steps * args.batch_size / timed_s
    rate_all = args.steps * args.batch_size / (timed_s + warm_s)
    out = {
        "impl": "pytorch-python",
        "model": model_name,
        "device": args.device,
        "torch": torch.__version__,
        "threads": threads,
        "precision": args.precision,
        "parameters": params,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "width": args.width,
        "latent": args.latent,
        "seed": args.seed,
        "warmup_steps": args.warmup_steps,
        "warmup_seconds": round(warm_s, 4),
        "timed_seconds": round(timed_s, 4),
        # images_per_s leaves the warm-up steps out; images_per_s_all counts every step,
        # which is how imagine's trainer reports its rate.
        "images_per_s": round(rate, 2),
        "images_per_s_all": round(rate_all, 2),
        "seconds_per_epoch": round(images.size(0) / rate, 2),
        "final_loss": losses.get("loss", losses.get("g_loss")),
    }
    out.update({f"final_{k}": v for k, v in losses.items() if k != "loss"})
    print(json.dumps(out), flush=True)
