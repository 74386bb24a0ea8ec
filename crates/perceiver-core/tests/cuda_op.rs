//! The `FusedAttention` op itself on CUDA against the same op on the CPU: forward outputs and the
//! gradients of q, k and v, with a key-padding mask that leaves one query's keys all masked, in
//! f32. Runs where a CUDA device is present and this crate was built with the `cuda` feature
//! (`scripts/gpu-check.sh` runs it); elsewhere it says so and passes without checking anything.

use candle_core::{DType, Device, Tensor, Var};
use perceiver_core::fused_attention;

/// Deterministic inputs in [-1, 1).
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2000) as f32 / 1000.0 - 1.0)
        .collect()
}

/// Forward output and gradients of `sum(out ∘ w)` on `device`, copied back to the CPU as vectors.
fn run(device: &Device, dims: (usize, usize, usize, usize, usize)) -> Vec<Vec<f32>> {
    let (b, h, nq, nk, d) = dims;
    let var = |n: usize, shape: (usize, usize, usize, usize), seed: u32| {
        Var::from_tensor(&Tensor::from_vec(values(n, seed), shape, device).expect("tensor"))
            .expect("var")
    };
    let q = var(b * h * nq * d, (b, h, nq, d), 1);
    let k = var(b * h * nk * d, (b, h, nk, d), 2);
    let v = var(b * h * nk * d, (b, h, nk, d), 3);
    let w = Tensor::from_vec(values(b * h * nq * d, 4), (b, h, nq, d), device).expect("w");
    // Batch 0 attends to every key; batch 1 to every third; batch 2 (when present) to none.
    let mask: Vec<f32> = (0..b * nk)
        .map(|i| match i / nk {
            0 => 1.0,
            1 => ((i % nk) % 3 == 0) as u8 as f32,
            _ => 0.0,
        })
        .collect();
    let mask = Tensor::from_vec(mask, (b, nk), device).expect("mask");
    let out =
        fused_attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), Some(&mask)).expect("forward");
    let grads = (&out * &w)
        .expect("mul")
        .sum_all()
        .expect("sum")
        .backward()
        .expect("backward");
    let flat = |t: &Tensor| -> Vec<f32> {
        t.to_device(&Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .expect("to cpu")
    };
    let mut result = vec![flat(&out)];
    for x in [&q, &k, &v] {
        result.push(flat(grads.get(x.as_tensor()).expect("gradient")));
    }
    result
}

#[test]
fn fused_attention_on_cuda_matches_the_cpu_op() {
    let cuda = match Device::cuda_if_available(0) {
        Ok(device) if device.is_cuda() => device,
        _ => {
            eprintln!(
                "skipped: no CUDA device (build with `--features cuda` on a machine with a GPU; scripts/gpu-check.sh runs this test)"
            );
            return;
        }
    };
    // The decoder's shape (one query, 16 keys), a HiP level's, and one with many keys.
    for dims in [(3, 4, 1, 16, 16), (3, 2, 4, 24, 16), (3, 4, 64, 300, 32)] {
        let cpu = run(&Device::Cpu, dims);
        let gpu = run(&cuda, dims);
        for (name, (a, b)) in ["out", "dq", "dk", "dv"].iter().zip(cpu.iter().zip(&gpu)) {
            let worst = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs() / (1.0 + x.abs()))
                .fold(0.0f32, f32::max);
            assert!(
                b.iter().all(|y| y.is_finite()) && worst < 1e-4,
                "{dims:?} {name}: worst relative difference {worst}"
            );
        }
    }
}
