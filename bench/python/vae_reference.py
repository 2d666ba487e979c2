#!/usr/bin/env python3
"""PyTorch reference for `imagine train image --model vae`: the same network, loss and Adam.

The layer plan is src/models/vae.cpp's (unconditional, Bernoulli likelihood): stride-2 4x4
convolutions + ReLU down to the base map, one Linear to [mu, logvar] (logvar clamped to
[-30, 10]); the decoder mirrors it with a Linear, ReLU and stride-2 transposed convolutions,
ReLU between them and none after the last (its output is the pixel logits). Loss per image:
BCE-with-logits summed over pixels + beta KL(q(z|x) || N(0, I)), averaged over the batch.
Adam lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay, constant learning rate.

Modules are built in imagine's order from torch's generator seeded with --seed, and the
batches replay imagine's data RNG, so with the same LibTorch the two runs should start from
the same weights and see the same images and noise; they then differ by rounding only
(imagine's Adam is its own code).

Leaves out: evaluation, checkpoints, sample grids, class conditioning, the Gaussian
likelihood. Progress goes to stderr; stdout gets one JSON line
  {"model": "vae", "steps": .., "batch_size": .., "images_per_s": .., "seconds_per_epoch": ..,
   "final_loss": .., ...}
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

import image_common as common


class VAE(nn.Module):
    def __init__(self, geo):
        super().__init__()
        self.latent = geo.latent
        n, b, top = geo.stages, geo.base, geo.top
        layers, cin = [], geo.channels
        for i in range(n):
            layers += [nn.Conv2d(cin, geo.stage_channels(i), 4, stride=2, padding=1), nn.ReLU()]
            cin = geo.stage_channels(i)
        self.encoder = nn.Sequential(*layers)
        self.enc_out = nn.Linear(top * b * b, 2 * geo.latent)  # -> [mu, logvar]
        self.dec_in = nn.Linear(geo.latent, top * b * b)
        layers = [nn.ReLU(), nn.Unflatten(1, (top, b, b))]
        for i in reversed(range(n)):
            cout = geo.channels if i == 0 else geo.stage_channels(i - 1)
            layers.append(nn.ConvTranspose2d(geo.stage_channels(i), cout, 4, stride=2, padding=1))
            if i > 0:
                layers.append(nn.ReLU())
        self.decoder = nn.Sequential(*layers)

    def encode(self, x):
        stats = self.enc_out(self.encoder(x).flatten(1))  # (N, 2 latent)
        mu = stats[:, : self.latent]
        logvar = stats[:, self.latent :].clamp(-30.0, 10.0)  # exp() cannot overflow
        return mu, logvar

    def loss(self, x, beta):
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = self.decoder(self.dec_in(z)).float()  # (N, C, S, S)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
        return (recon + beta * kl).mean()


def main():
    ap = common.parser(__doc__.split("\n")[0], width=32, latent=32, lr=1e-3)
    ap.add_argument("--beta", type=float, default=1.0, help="weight of the KL term")
    args = ap.parse_args()
    images, threads = common.setup(args)
    geo = common.Geometry(images.size(1), args.size, args.width, args.latent)

    model = VAE(geo).to(args.device)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    batches = common.draw_batches(args.data_rng, args.seed ^ 0x5EEDDA7A, args.steps, args.batch_size, images.size(0))
    common.log(
        f"model: VAE {args.size}x{args.size}x{geo.channels}, latent {geo.latent}, width {geo.width}, "
        f"{geo.stages} stages, {n_params} parameters; {args.steps} steps of {args.batch_size} images; "
        f"{threads} threads, {args.precision}, torch {torch.__version__}, seed {args.seed}"
    )

    def step(i):
        opt.zero_grad()
        x = common.images_to_float(common.to_device(args, images.index_select(0, batches[i])))
        with common.autocast(args):
            loss = model.loss(x, args.beta)
        loss.backward()
        value = loss.item()
        opt.step()
        return {"loss": value}

    model.train()
    common.train(args, "vae", images, threads, n_params, step)


if __name__ == "__main__":
    main()
