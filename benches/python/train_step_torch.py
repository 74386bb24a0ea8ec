"""One training step of the default model in PyTorch, on the same batch and threads as Rust.

A measuring tool only (PyTorch is never a dependency of the workspace). The model is built from
the modules of crates/perceiver-core/tests/golden/make_golden.py (the PyTorch reference the Rust
crates are checked against to 1e-5), assembled as crates/trainer/src/model.rs does: one embedder
per modality (linear over values + Fourier features of place/time, plus a learned type vector),
tokens concatenated per history step, the HiP encoder, the MetNet decoder over all lead times,
the masked pinball loss, gradient clipping and AdamW. Its parameter count must equal Rust's.

    python3 -m pip install -r benches/python/requirements.txt
    cargo run --release -p power-perceiver-benches --bin export-batch -- target/bench/batch
    python3 benches/python/train_step_torch.py --threads 1
    python3 benches/python/train_step_torch.py --threads 2

Prints the median time of a step (forward, loss, backward, clip, AdamW) and examples/s.
"""
import argparse
import importlib.util
import json
import statistics
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location(
    "golden", ROOT / "crates/perceiver-core/tests/golden/make_golden.py"
)
golden = importlib.util.module_from_spec(spec)
spec.loader.exec_module(golden)
torch.set_default_dtype(torch.float32)  # the golden script works in float64


class Embedder(nn.Module):
    def __init__(self, width, fourier_columns, token_dim, bands, max_freq):
        super().__init__()
        self.columns, self.bands, self.max_freq = fourier_columns, bands, max_freq
        extra = len(fourier_columns) * (2 * bands + 1)
        self.linear = nn.Linear(width + extra, token_dim)
        # Rust names it `type`, which nn.Module already uses.
        self.kind = nn.Parameter(torch.randn(token_dim) * 0.02)

    def forward(self, values):
        if self.columns:
            picked = values[..., self.columns]
            values = torch.cat([values, golden.fourier(picked, self.bands, self.max_freq)], dim=-1)
        return self.linear(values) + self.kind


class Forecaster(nn.Module):
    def __init__(self, meta):
        super().__init__()
        m = meta["model"]
        self.embed = nn.ModuleDict(
            {
                mod["name"]: Embedder(mod["width"], mod["fourier_columns"], m["token_dim"],
                                      m["fourier_bands"], m["fourier_max_freq"])
                for mod in meta["modalities"]
            }
        )
        levels = [(l["groups"], l["latents"], l["channels"], l["self_attention_layers"], l["heads"])
                  for l in m["levels"]]
        self.encoder = golden.HipEncoder(m["token_dim"], levels, m["widening"])
        self.decoder = golden.Decoder(
            meta["query_width"], m["decoder_channels"], levels[-1][2], m["decoder_blocks"],
            m["decoder_heads"], m["widening"], 16, 32.0, len(m["quantiles"]),
        )
        self.quantiles = torch.tensor(m["quantiles"])
        self.step_hours = meta["step_minutes"] / 60.0

    def loss(self, batch):
        tokens, masks = [], []
        for name, embedder in self.embed.items():
            values = batch[f"{name}.values"]
            if values.shape[2] == 0:
                continue
            tokens.append(embedder(values))
            masks.append(batch[f"{name}.mask"])
        bottleneck = self.encoder(torch.cat(tokens, dim=2), torch.cat(masks, dim=2))
        k = batch["queries"].shape[2]
        lead = torch.arange(1, k + 1, dtype=torch.float32) * self.step_hours
        pred = self.decoder(batch["queries"], batch["query_mask"], lead, bottleneck)
        mask = batch["target_mask"] * batch["query_mask"].unsqueeze(-1)
        diff = batch["targets"].unsqueeze(-1) - pred
        loss = diff * self.quantiles + torch.relu(-diff)
        count = (mask.sum() * len(self.quantiles)).clamp(min=1.0)
        return (loss * mask.unsqueeze(-1)).sum() / count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", default=str(ROOT / "target/bench/batch"))
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    meta = json.loads(Path(args.batch + ".json").read_text())
    batch = load_file(args.batch + ".safetensors")
    model = Forecaster(meta)
    n_params = sum(p.numel() for p in model.parameters())
    if n_params != meta["parameters"]:
        raise SystemExit(f"not equivalent: PyTorch model has {n_params} parameters, Rust {meta['parameters']}")
    t = meta["train"]
    opt = torch.optim.AdamW(model.parameters(), lr=t["learning_rate"], weight_decay=t["weight_decay"])

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model.loss(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
        opt.step()
        return loss.item()

    for _ in range(3):
        step()
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < args.seconds or len(times) < 10:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    q = statistics.quantiles(times, n=4)
    b = batch["queries"].shape[0]
    print(json.dumps({
        "bench": f"torch_train_step_b{b}_threads{args.threads}",
        "torch": torch.__version__,
        "parameters": n_params,
        "median_ms": round(med * 1e3, 3),
        "spread": round((q[2] - q[0]) / 2 / med, 4),
        "samples": len(times),
        "examples_per_s": round(b / med, 1),
    }))


if __name__ == "__main__":
    main()
