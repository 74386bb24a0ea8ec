"""PyTorch reference of the attention block, a two-level HiP encoder and a one-block MetNet decoder.

Offline only (PyTorch is a measuring tool here, never a dependency). Writes, in float64, the
weights under the Rust parameter names, the inputs, the outputs and the gradients of
`sum(output * loss_weights)` with respect to every weight and input:

    python3 -m pip install torch==2.5.1 safetensors==0.4.5
    python3 crates/perceiver-core/tests/golden/make_golden.py

Outputs: crates/perceiver-core/tests/golden/attention_block.safetensors,
crates/hip-encoder/tests/golden/hip.safetensors, crates/metnet-decoder/tests/golden/decoder.safetensors.
The parameter names are the contract: a checkpoint written by Rust loads into these modules.
"""

import math
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[4]
torch.set_default_dtype(torch.float64)
torch.manual_seed(20261129)


class MultiHeadAttention(nn.Module):
    def __init__(self, q_dim, kv_dim, heads):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(q_dim, q_dim)
        self.k = nn.Linear(kv_dim, q_dim)
        self.v = nn.Linear(kv_dim, q_dim)
        self.o = nn.Linear(q_dim, q_dim)

    def forward(self, x, ctx, mask=None):
        b, nq, c = x.shape
        nk = ctx.shape[1]
        h, d = self.heads, c // self.heads
        q = self.q(x).view(b, nq, h, d).transpose(1, 2)
        k = self.k(ctx).view(b, nk, h, d).transpose(1, 2)
        v = self.v(ctx).view(b, nk, h, d).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)
        if mask is not None:
            keep = (mask != 0)[:, None, None, :]
            scores = scores.masked_fill(~keep, float("-inf"))
        p = torch.softmax(scores, dim=-1)
        # A query with every key masked attends to nothing: zero output (softmax gives NaN).
        p = torch.nan_to_num(p, nan=0.0)
        out = (p @ v).transpose(1, 2).reshape(b, nq, c)
        return self.o(out)


class Mlp(nn.Module):
    def __init__(self, dim, widening, activation="gelu"):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim * widening)
        self.fc2 = nn.Linear(dim * widening, dim)
        self.activation = activation

    def forward(self, x):
        h = self.fc1(x)
        h = F.gelu(h, approximate="tanh") if self.activation == "gelu" else F.relu(h) ** 2
        return self.fc2(h)


class Block(nn.Module):
    def __init__(self, dim, context_dim, heads, widening, cross, activation="gelu"):
        super().__init__()
        self.norm_q = nn.LayerNorm(dim, eps=1e-5)
        if cross:
            self.norm_kv = nn.LayerNorm(context_dim, eps=1e-5)
        self.attn = MultiHeadAttention(dim, context_dim if cross else dim, heads)
        self.norm_mlp = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = Mlp(dim, widening, activation)

    def forward_cross(self, x, ctx, mask=None):
        x = x + self.attn(self.norm_q(x), self.norm_kv(ctx), mask)
        return x + self.mlp(self.norm_mlp(x))

    def forward_self(self, x, mask=None):
        h = self.norm_q(x)
        x = x + self.attn(h, h, mask)
        return x + self.mlp(self.norm_mlp(x))


class Film(nn.Module):
    def __init__(self, cond_dim, dim):
        super().__init__()
        self.hidden = nn.Linear(cond_dim, dim)
        self.out = nn.Linear(dim, 2 * dim)
        self.dim = dim

    def forward(self, x, cond):
        sb = self.out(F.gelu(self.hidden(cond), approximate="tanh"))
        scale, bias = sb[..., : self.dim].unsqueeze(-2), sb[..., self.dim :].unsqueeze(-2)
        return x * (1 + scale) + bias


class HipLevel(nn.Module):
    def __init__(self, groups, latents, channels, self_layers, heads, input_dim, widening):
        super().__init__()
        self.groups, self.n_latents, self.channels = groups, latents, channels
        self.latents = nn.Parameter(torch.randn(groups, latents, channels))
        self.cross = Block(channels, input_dim, heads, widening, cross=True)
        setattr(self, "self", nn.ModuleList([Block(channels, channels, heads, widening, cross=False) for _ in range(self_layers)]))

    def forward(self, x, mask):
        b, g_in, n, c_in = x.shape
        g, l, c = self.groups, self.n_latents, self.channels
        merged = g_in // g * n
        inputs = x.reshape(b * g, merged, c_in)
        mask = None if mask is None else mask.reshape(b * g, merged)
        lat = self.latents.unsqueeze(0).expand(b, g, l, c).reshape(b * g, l, c)
        h = self.cross.forward_cross(lat, inputs, mask)
        for block in getattr(self, "self"):
            h = block.forward_self(h)
        return h.reshape(b, g, l, c)


class HipEncoder(nn.Module):
    def __init__(self, input_dim, levels, widening):
        super().__init__()
        mods, dim = [], input_dim
        for (g, l, c, s, h) in levels:
            mods.append(HipLevel(g, l, c, s, h, dim, widening))
            dim = c
        self.levels = nn.ModuleList(mods)

    def forward(self, tokens, mask):
        x, m = tokens, mask
        for level in self.levels:
            x = level(x, m)
            m = None
        return x.squeeze(1)


def fourier(x, bands, max_freq):
    freqs = torch.linspace(1.0, max_freq / 2, bands) * math.pi
    parts = []
    for i in range(x.shape[-1]):
        xi = x[..., i : i + 1]
        angles = xi * freqs
        parts.append(torch.cat([xi, torch.sin(angles), torch.cos(angles)], dim=-1))
    return torch.cat(parts, dim=-1)


class DecoderBlock(nn.Module):
    def __init__(self, cond, c, context_dim, heads, widening):
        super().__init__()
        self.film_cross = Film(cond, c)
        self.cross = Block(c, context_dim, heads, widening, cross=True)
        self.film_self = Film(cond, c)
        self.self_attention = Block(c, c, heads, widening, cross=False)


class Decoder(nn.Module):
    def __init__(self, query_dim, c, context_dim, blocks, heads, widening, bands, max_freq, quantiles):
        super().__init__()
        self.bands, self.max_freq, self.q = bands, max_freq, quantiles
        cond = 2 * bands + 1
        self.embed = nn.Linear(query_dim, c)
        self.blocks = nn.ModuleList([DecoderBlock(cond, c, context_dim, heads, widening) for _ in range(blocks)])
        self.norm_out = nn.LayerNorm(c, eps=1e-5)
        self.head = nn.Linear(c, quantiles)

    def forward(self, queries, query_mask, lead_hours, bottleneck):
        b, s, k, _ = queries.shape
        _, l, cb = bottleneck.shape
        x = self.embed(queries).transpose(1, 2).reshape(b * k, s, -1)
        mask = query_mask.unsqueeze(1).expand(b, k, s).reshape(b * k, s)
        cond = fourier(lead_hours.reshape(k, 1), self.bands, self.max_freq)
        cond = cond.unsqueeze(0).expand(b, k, -1).reshape(b * k, -1)
        ctx = bottleneck.unsqueeze(1).expand(b, k, l, cb).reshape(b * k, l, cb)
        for blk in self.blocks:
            x = blk.film_cross(x, cond)
            x = blk.cross.forward_cross(x, ctx)
            x = blk.film_self(x, cond)
            x = blk.self_attention.forward_self(x, mask)
        raw = self.head(self.norm_out(x))
        base, steps = raw[..., :1], F.softplus(raw[..., 1:])
        q = torch.cat([base, base + torch.cumsum(steps, dim=-1)], dim=-1)
        return q.reshape(b, k, s, self.q).transpose(1, 2)


def randomise(module):
    # Every weight non-trivial (FiLM and LayerNorm included), so each one is really tested.
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.3)


def export(path, module, inputs, run):
    randomise(module)
    leaves = {k: v.clone().requires_grad_(v.is_floating_point() and not k.endswith("mask")) for k, v in inputs.items()}
    out = run(module, leaves)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    tensors = {name: p.detach().clone() for name, p in module.named_parameters()}
    tensors.update({f"grad.{name}": p.grad.detach().clone() for name, p in module.named_parameters()})
    for k, v in leaves.items():
        tensors[f"input.{k}"] = v.detach().clone()
        if v.requires_grad:
            tensors[f"grad.input.{k}"] = v.grad.detach().clone()
    tensors["output"] = out.detach().clone()
    tensors["loss_weights"] = weights
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    print(f"{path.relative_to(ROOT)}: {len(tensors)} tensors, output {tuple(out.shape)}")


def main():
    # Attention block: 2 x 3 queries of width 8 attend to 2 x 5 tokens of width 6; one padded key.
    block = Block(8, 6, 2, 2, cross=True)
    mask = torch.tensor([[1.0, 1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 0.0]])
    export(
        ROOT / "crates/perceiver-core/tests/golden/attention_block.safetensors",
        block,
        {"x": torch.randn(2, 3, 8), "context": torch.randn(2, 5, 6), "mask": mask},
        lambda m, i: m.forward_cross(i["x"], i["context"], i["mask"]),
    )

    # HiP: 4 groups of 5 tokens (width 6) -> level (4 groups, 3 latents, 8 ch) -> (1 group, 4 latents, 8 ch).
    hip = HipEncoder(6, [(4, 3, 8, 1, 2), (1, 4, 8, 1, 2)], widening=2)
    tmask = torch.ones(2, 4, 5)
    tmask[0, 1, 3:] = 0.0
    tmask[1, 2, :] = 0.0  # a group with nothing observed
    export(
        ROOT / "crates/hip-encoder/tests/golden/hip.safetensors",
        hip,
        {"tokens": torch.randn(2, 4, 5, 6), "mask": tmask},
        lambda m, i: m(i["tokens"], i["mask"]),
    )

    # Decoder: 2 examples, 3 systems (one padded), 4 lead times, 5 query features, bottleneck 7 x 6.
    dec = Decoder(5, 8, 6, blocks=1, heads=2, widening=2, bands=4, max_freq=8.0, quantiles=3)
    export(
        ROOT / "crates/metnet-decoder/tests/golden/decoder.safetensors",
        dec,
        {
            "queries": torch.randn(2, 3, 4, 5),
            "query_mask": torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]),
            "lead_hours": torch.tensor([0.25, 0.5, 0.75, 1.0]),
            "bottleneck": torch.randn(2, 7, 6),
        },
        lambda m, i: m(i["queries"], i["query_mask"], i["lead_hours"], i["bottleneck"]),
    )


if __name__ == "__main__":
    main()
