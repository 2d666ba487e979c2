#!/usr/bin/env python3
"""PyTorch reference for `imagine train image --model gan`: the same DCGAN, loss, Adam and EMA.

The layer plan is src/models/gan.cpp's (unconditional, batch-normalised discriminator, no
spectral norm). Generator: z as (N, latent, 1, 1) -> base x base transposed convolution (no
bias) + BatchNorm + ReLU, then stride-2 4x4 transposed convolutions, BatchNorm + ReLU
between them, bias and Tanh on the last. Discriminator: stride-2 4x4 convolutions with bias,
BatchNorm on all but the first, LeakyReLU 0.2, then a base x base convolution to one logit.
DCGAN initialisation: convolution weights N(0, 0.02), BatchNorm scales N(1, 0.02), biases 0.

Each step, as imagine's trainer: the discriminator first (non-saturating loss on a real
batch and on G(z) computed without gradients, two separate D passes), then the generator
with fresh z (D's parameters do not require gradients meanwhile), each with its own Adam
(lr 2e-4, betas (0.5, 0.999), eps 1e-8, no weight decay), then the generator's exponential
moving average: decay min(0.999, (1 + step) / (10 + step)), buffers copied. imagine draws
the generator step's batch indices (it needs their labels only in conditional models) but
gathers no images for it; so does this, so the data stream stays the same.

Modules are built and initialised in imagine's order from torch's generator seeded with
--seed (the EMA copy is built after the initialisation, as in imagine, so it consumes the
same random numbers), and the batches replay imagine's data RNG.

Leaves out: evaluation, checkpoints, sample grids, class conditioning, hinge and WGAN-GP
losses, spectral norm. Progress goes to stderr; stdout gets one JSON line
  {"model": "gan", "steps": .., "batch_size": .., "images_per_s": .., "seconds_per_epoch": ..,
   "final_loss": <generator loss>, "final_d_loss": .., "final_g_loss": .., ...}
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

import image_common as common


class Generator(nn.Module):
    def __init__(self, geo):
        super().__init__()
        n = geo.stages
        layers = [
            nn.ConvTranspose2d(geo.latent, geo.top, geo.base, stride=1, padding=0, bias=False),
            nn.BatchNorm2d(geo.top),
            nn.ReLU(),
        ]
        for i in reversed(range(n)):
            last = i == 0
            cout = geo.channels if last else geo.stage_channels(i - 1)
            layers.append(nn.ConvTranspose2d(geo.stage_channels(i), cout, 4, stride=2, padding=1, bias=last))
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(cout), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):  # (N, latent) -> (N, C, S, S) in [-1, 1]
        return self.net(z.view(z.size(0), z.size(1), 1, 1))


class Discriminator(nn.Module):
    def __init__(self, geo):
        super().__init__()
        layers, cin = [], geo.channels
        for i in range(geo.stages):
            cout = geo.stage_channels(i)
            layers.append(nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=True))
            if i > 0:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2))
            cin = cout
        layers.append(nn.Conv2d(cin, 1, geo.base, stride=1, padding=0, bias=True))
        self.net = nn.Sequential(*layers)

    def forward(self, x):  # (N, C, S, S) in [-1, 1] -> (N,) logits
        return self.net(x).view(-1)


@torch.no_grad()
def dcgan_init(module):
    # Over the parameters in registration order, as imagine: the random draws line up.
    for name, p in module.named_parameters():
        if p.dim() == 4:
            p.normal_(0.0, 0.02)
        elif p.dim() == 1 and "weight" in name:  # BatchNorm scale
            p.normal_(1.0, 0.02)
        elif "bias" in name:
            p.zero_()


@torch.no_grad()
def update_ema(ema, g, decay):
    src = dict(g.named_parameters())
    for name, p in ema.named_parameters():
        p.lerp_(src[name], 1.0 - decay)
    bufs = dict(g.named_buffers())
    for name, b in ema.named_buffers():
        b.copy_(bufs[name])


def main():
    ap = common.parser(__doc__.split("\n")[0], width=32, latent=64, lr=2e-4)
    ap.add_argument("--ema", type=float, default=0.999, help="generator EMA decay (0 = copy the weights)")
    args = ap.parse_args()
    images, threads = common.setup(args)
    geo = common.Geometry(images.size(1), args.size, args.width, args.latent)

    g, d = Generator(geo), Discriminator(geo)
    dcgan_init(g)
    dcgan_init(d)
    g.to(args.device)
    d.to(args.device)
    g_ema = Generator(geo).to(args.device)
    with torch.no_grad():
        for p_ema, p in zip(g_ema.parameters(), g.parameters()):
            p_ema.copy_(p)
            p_ema.requires_grad_(False)
    n_params = sum(p.numel() for p in g.parameters()) + sum(p.numel() for p in d.parameters())
    adam = dict(lr=args.lr, betas=(0.5, 0.999), eps=1e-8, weight_decay=0.0)
    opt_d = torch.optim.Adam(d.parameters(), **adam)
    opt_g = torch.optim.Adam(g.parameters(), **adam)
    d_params = list(d.parameters())
    # Two batches per step (the D step's and the G step's), interleaved as imagine draws them.
    batches = common.draw_batches(args.data_rng, args.seed ^ 0x5EEDDA7A, 2 * args.steps, args.batch_size,
                                  images.size(0))
    common.log(
        f"model: DCGAN {args.size}x{args.size}x{geo.channels}, latent {geo.latent}, width {geo.width}, "
        f"{geo.stages} stages, {n_params} trained parameters (G + D); {args.steps} steps of {args.batch_size} "
        f"images; {threads} threads, {args.precision}, torch {torch.__version__}, seed {args.seed}"
    )

    def step(i):
        # Discriminator
        opt_d.zero_grad()
        x = common.images_to_float(common.to_device(args, images.index_select(0, batches[2 * i])))
        for p in d_params:
            p.requires_grad_(True)
        with common.autocast(args):
            z = torch.randn(args.batch_size, geo.latent, device=args.device)
            real = x * 2.0 - 1.0
            with torch.no_grad():
                fake = g(z)
            d_loss = F.softplus(-d(real)).mean() + F.softplus(d(fake)).mean()
        d_loss.backward()
        d_value = d_loss.item()
        opt_d.step()
        # Generator
        opt_g.zero_grad()
        for p in d_params:
            p.requires_grad_(False)
        with common.autocast(args):
            z = torch.randn(args.batch_size, geo.latent, device=args.device)
            g_loss = F.softplus(-d(g(z))).mean()
        g_loss.backward()
        g_value = g_loss.item()
        opt_g.step()
        done = i + 1
        update_ema(g_ema, g, min(args.ema, (1.0 + done) / (10.0 + done)) if args.ema > 0 else 0.0)
        return {"d_loss": d_value, "g_loss": g_value}

    g.train()
    d.train()
    common.train(args, "gan", images, threads, n_params, step)


if __name__ == "__main__":
    main()
