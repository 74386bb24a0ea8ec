#!/usr/bin/env bash
# One-go GPU check of the CUDA attention kernels, for a machine with an NVIDIA GPU, its driver,
# PyTorch (measuring tool only) and the CUDA 13 NVRTC library:
#   1. every kernel against the f64 CPU reference on fresh random inputs (outputs poisoned with
#      NaN before each launch; NaN never passes), then timings with CUDA events and TFLOP/s
#      (target/release/examples/gpu_check, built on any machine, even without CUDA:
#      `cargo build --release -p perceiver-core --features gpu-check --example gpu_check`);
#   2. PyTorch's scaled_dot_product_attention on the same shapes (f32 and bf16) and the bf16
#      matmul ceiling, and the ratios;
#   3. the FusedAttention op on CUDA against the same op on the CPU (`tests/cuda_op.rs`), when
#      cargo and the CUDA toolkit are present (it builds perceiver-core with `--features cuda`);
#   4. a short training run on --device cuda, when a CUDA build of power-perceiver is present
#      (target/release/power-perceiver built with `--features cuda`).
# Results go to ${OUT:-gpu-check-out}/. Exit status: non-zero if any kernel is wrong.
set -uo pipefail
out="${OUT:-gpu-check-out}"
mkdir -p "$out"
check="${GPU_CHECK_BIN:-target/release/examples/gpu_check}"

# NVRTC: the system's, else PyTorch's wheel, else fetch it.
if ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc.so.13'; then
    lib=$(python3 - <<'PY' 2>/dev/null
import glob, os, site
for root in site.getsitepackages():
    hits = glob.glob(os.path.join(root, "nvidia", "**", "libnvrtc.so.13"), recursive=True)
    if hits:
        print(os.path.dirname(hits[0])); break
PY
)
    if [ -z "${lib:-}" ]; then lib=$(bash scripts/install-nvrtc.sh "$out/nvrtc"); fi
    export LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/card.csv"

status=0
"$check" > "$out/gpu_check.jsonl" 2> >(tee "$out/gpu_check.txt" >&2) || status=$?
python3 benches/python/attention_sdpa_gpu.py > "$out/sdpa.jsonl" || echo "PyTorch SDPA timing failed" >&2

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
ours = [json.loads(l) for l in open(f"{out}/gpu_check.jsonl") if l.strip()]
sdpa = [json.loads(l) for l in open(f"{out}/sdpa.jsonl") if l.strip()]
t = {(r["shape"], r["kernel"]): r for r in ours if r["kind"] == "time"}
s = {(r["shape"], r["dtype"], r["pass"]): r["ms"] for r in sdpa if r["kind"] == "sdpa"}
ceiling = next((r["tflops"] for r in sdpa if r["kind"] == "matmul"), None)
print("\nratio = PyTorch SDPA time / our time (>= 1.0: we are faster)")
for shape in sorted({k[0] for k in t}):
    for ours_kernel, dtype, p in (("f32 forward", "float32", "forward"),
                                  ("f32 forward+backward", "float32", "forward+backward"),
                                  ("bf16 mma forward", "bfloat16", "forward")):
        r = t.get((shape, ours_kernel)); ref = s.get((shape, dtype, p))
        if r and ref:
            print(f"  {shape:<20} {ours_kernel:<22} ours {r['ms']:9.4f} ms  sdpa {ref:9.4f} ms  ratio {ref / r['ms']:5.2f}")
if ceiling:
    print(f"\nbf16 matmul ceiling (8192^3): {ceiling:.1f} TFLOP/s")
    for shape in ("large-d64", "large-d128"):
        r = t.get((shape, "bf16 mma forward"))
        if r:
            print(f"  {shape} bf16 mma forward: {r['tflops']:.1f} TFLOP/s = {100 * r['tflops'] / ceiling:.0f} % of the ceiling")
PY

if command -v cargo >/dev/null && command -v nvcc >/dev/null; then
    cargo test --release -p perceiver-core --features cuda --test cuda_op -- --nocapture \
        2>&1 | tee "$out/cuda_op.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi

if [ -x target/release/power-perceiver ] && target/release/power-perceiver train --help | grep -q device; then
    target/release/power-perceiver train --device cuda --steps 50 --out "$out/train-cuda" \
        2>&1 | tail -n 12 | tee "$out/train-cuda.txt" || echo "training on cuda failed" >&2
fi
exit $status
