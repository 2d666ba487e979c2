#!/usr/bin/env python3
"""Lower-precision inference weights for a trained imagine text model, through LibTorch's own
kernels (Debian's python3-torch is the same LibTorch 1.13 build imagine links).

For the model's Linear layers at decoding shapes (M = 1 and 8 rows: one step of one or eight
sequences) it times float32, bfloat16 (weights and activations rounded, float32 output: what
`generate text --decode-precision bf16` does) and int8 dynamic quantisation
(torch.ao.quantization.quantize_dynamic: int8 weights, activations quantised per call) on every
quantised engine this build has (fbgemm is absent from Debian's build; qnnpack and onednn are
there). Beside the speed it reports each variant's loss on the model's validation split
(byte tokenizer: the last --val-fraction of the data, as training split it).

  /usr/bin/python3 bench/generate/quant_bench.py MODEL_DIR DATA.txt [--threads N] [--windows W]

Prints one JSON object.
"""
import argparse
import json
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from gpt_reference import GPT  # noqa: E402


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (k, v["dtype"])
        a, b = v["data_offsets"]
        out[k] = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(v["shape"])
    return out


def timed(f, n=400):
    for _ in range(30):
        f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--windows", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = json.load(open(os.path.join(args.model, "config.json")))
    arch = cfg["architecture"]
    assert cfg["tokenizer"]["kind"] == "byte", "byte-tokenizer models only"
    model = GPT(arch["vocab_size"], arch["block_size"], arch["n_layer"], arch["n_head"], arch["n_embd"], 0.0,
                arch.get("bias", False))
    model.load_state_dict(load_safetensors(os.path.join(args.model, "model.safetensors")), strict=False)
    model.eval()

    text = open(args.data, "rb").read()
    frac = cfg.get("dataset", {}).get("val_fraction", 0.1)
    val = torch.tensor(list(text[int(len(text) * (1 - frac)):]), dtype=torch.long)
    T = arch["block_size"]
    n = min(args.windows, (len(val) - 1) // T)
    x = torch.stack([val[i * T:(i + 1) * T] for i in range(n)])
    y = torch.stack([val[i * T + 1:(i + 1) * T + 1] for i in range(n)])

    def val_loss(m, bf16=False):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            total = 0.0
            for i in range(0, n, 8):
                logits = m(x[i:i + 8])
                total += F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y[i:i + 8].reshape(-1),
                                         reduction="sum").item()
            return total / (n * T)

    linears = [mod for mod in model.modules() if isinstance(mod, nn.Linear)]
    result = {"model": args.model, "threads": args.threads, "parameters": sum(p.numel() for p in model.parameters()),
              "linear_layers": len(linears), "val_windows": n, "variants": {}}

    def step_us(fn_for_layer):
        out = {}
        for M in (1, 8):
            total = 0.0
            for lin in linears:
                total += timed(fn_for_layer(lin, torch.randn(M, lin.in_features)))
            out[str(M)] = total
        return out

    def f32(lin, xin):
        wt = lin.weight.detach().t().contiguous()
        return lambda: torch.mm(xin, wt)

    def bf16(lin, xin):
        wt = lin.weight.detach().t().contiguous().to(torch.bfloat16)
        return lambda: torch.mm(xin.to(torch.bfloat16), wt).float()

    result["variants"]["fp32"] = {"linear_us_per_step": step_us(f32), "val_loss": val_loss(model)}
    result["variants"]["bf16"] = {"linear_us_per_step": step_us(bf16), "val_loss": val_loss(model, bf16=True)}
    for engine in torch.backends.quantized.supported_engines:
        if engine == "none":
            continue
        torch.backends.quantized.engine = engine
        q = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        qlin = [mod for mod in q.modules() if type(mod).__name__ == "Linear" and hasattr(mod, "_packed_params")]
        assert len(qlin) == len(linears)
        quantised = {id(a): b for a, b in zip(linears, qlin)}  # both in module order

        def int8(lin, xin):
            layer = quantised[id(lin)]
            return lambda: layer(xin)

        result["variants"]["int8-" + engine] = {"linear_us_per_step": step_us(int8), "val_loss": val_loss(q)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
