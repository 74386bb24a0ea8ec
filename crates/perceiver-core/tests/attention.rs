//! The fused attention op against the composed reference (outputs and gradients), against finite
//! differences in f64, and on the edge cases: fully masked rows, one query, one key.

use candle_core::{DType, Device, Tensor, Var};
use perceiver_core::{AttentionImpl, attention};
use proptest::prelude::*;

/// Deterministic values in [-2, 2) from a seed (SplitMix64).
fn values(seed: u64, n: usize) -> Vec<f64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
        })
        .collect()
}

fn tensor(seed: u64, shape: &[usize], dtype: DType) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(values(seed, n), shape, &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .expect("tensor")
}

struct Case {
    q: Var,
    k: Var,
    v: Var,
    mask: Option<Tensor>,
    weights: Tensor,
}

#[allow(clippy::too_many_arguments)] // one argument per dimension reads best in the tests
fn case(
    seed: u64,
    b: usize,
    h: usize,
    nq: usize,
    nk: usize,
    d: usize,
    mask: Option<Vec<f64>>,
    dtype: DType,
) -> Case {
    let var = |s: u64, shape: &[usize]| Var::from_tensor(&tensor(s, shape, dtype)).expect("var");
    Case {
        q: var(seed, &[b, h, nq, d]),
        k: var(seed + 1, &[b, h, nk, d]),
        v: var(seed + 2, &[b, h, nk, d]),
        mask: mask.map(|m| {
            Tensor::from_vec(m, (b, nk), &Device::Cpu)
                .and_then(|t| t.to_dtype(dtype))
                .expect("mask")
        }),
        weights: tensor(seed + 3, &[b, h, nq, d], dtype),
    }
}

/// Output and gradients of `sum(out · weights)` for one implementation.
fn run(c: &Case, how: AttentionImpl) -> (Vec<f64>, [Vec<f64>; 3]) {
    let out = attention(
        c.q.as_tensor(),
        c.k.as_tensor(),
        c.v.as_tensor(),
        c.mask.as_ref(),
        how,
    )
    .expect("attention");
    let loss = (&out * &c.weights).and_then(|t| t.sum_all()).expect("loss");
    let grads = loss.backward().expect("backward");
    let flat = |t: &Tensor| {
        t.to_dtype(DType::F64)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f64>())
            .expect("flat")
    };
    let g = |v: &Var| flat(grads.get(v.as_tensor()).expect("gradient exists"));
    (flat(&out), [g(&c.q), g(&c.k), g(&c.v)])
}

fn assert_close(what: &str, a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        assert!(x.is_finite() && y.is_finite(), "{what}[{i}]: {x} vs {y}");
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: fused {x} vs reference {y}"
        );
    }
}

fn compare(c: &Case, tol: f64) {
    let (fused_out, fused_grads) = run(c, AttentionImpl::Fused);
    let (ref_out, ref_grads) = run(c, AttentionImpl::Composed);
    assert_close("out", &fused_out, &ref_out, tol);
    for (name, (f, r)) in ["dq", "dk", "dv"]
        .iter()
        .zip(fused_grads.iter().zip(&ref_grads))
    {
        assert_close(name, f, r, tol);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Shapes large enough for the blocked kernels, crossing their query and key block edges.
    #[test]
    fn blocked_fused_matches_composed_on_random_shapes_and_masks(
        seed in any::<u64>(),
        b in 1usize..3, nq in 16usize..140, nk in 128usize..1100, d in 16usize..40,
        masked in any::<bool>(), density in 0.0f64..1.0,
    ) {
        let mask = masked.then(|| values(seed ^ 0x5EED, b * nk).iter().map(|&x| ((x + 2.0) / 4.0 < density) as u8 as f64).collect());
        compare(&case(seed, b, 2, nq, nk, d, mask, DType::F32), 2e-5);
    }

    #[test]
    fn fused_matches_composed_on_random_shapes_and_masks(
        seed in any::<u64>(),
        b in 1usize..3, h in 1usize..4, nq in 1usize..10, nk in 1usize..300, d in 1usize..70,
        mask_kind in 0u8..3, density in 0.0f64..1.0,
    ) {
        compare(&case(seed, b, h, nq, nk, d, random_mask(seed, b, nk, mask_kind, density), DType::F32), 2e-5);
    }

    /// The model's small heads (at most 16 keys of width at most 16: HiP's upper levels, the
    /// decoder), which the register-tile kernels run with tiles of 16 keys.
    #[test]
    fn fused_matches_composed_on_the_models_small_heads(
        seed in any::<u64>(),
        b in 1usize..4, h in 1usize..5, nq in 1usize..20, nk in 1usize..=16, d in 1usize..=16,
        mask_kind in 0u8..3, density in 0.0f64..1.0,
    ) {
        compare(&case(seed, b, h, nq, nk, d, random_mask(seed, b, nk, mask_kind, density), DType::F32), 2e-5);
    }

    /// Heads exactly 16 wide, which AVX-512 CPUs run with queries in the vector lanes: several
    /// blocks of 16 queries and of 16 keys, partial blocks, padding keys and fully masked rows.
    #[test]
    fn fused_matches_composed_on_heads_16_wide(
        seed in any::<u64>(),
        b in 1usize..4, h in 1usize..4, nq in 1usize..40, nk in 1usize..70,
        mask_kind in 0u8..3, density in 0.0f64..1.0,
    ) {
        compare(&case(seed, b, h, nq, nk, 16, random_mask(seed, b, nk, mask_kind, density), DType::F32), 2e-5);
    }
}

/// No mask (`kind` 0), or a random key mask of about `density`, fully masked rows included when
/// the density is low.
fn random_mask(seed: u64, b: usize, nk: usize, kind: u8, density: f64) -> Option<Vec<f64>> {
    (kind != 0).then(|| {
        values(seed ^ 0xABCD, b * nk)
            .iter()
            .map(|&x| ((x + 2.0) / 4.0 < density) as u8 as f64)
            .collect()
    })
}

#[test]
fn fused_gradients_match_finite_differences_in_f64() {
    let mask = vec![1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0];
    check_finite_differences((2, 2, 3, 5, 4), mask, 1);
}

/// The register-tile kernels across several 32-key tiles, the last partial (too few keys to block).
#[test]
fn direct_gradients_match_finite_differences_in_f64() {
    let nk = 90;
    let mask = (0..nk).map(|j| (j % 5 != 2) as u8 as f64).collect();
    check_finite_differences((1, 2, 3, nk, 8), mask, 7);
}

/// The blocked kernels (large heads: several query and key blocks, the last of each partial),
/// every 53rd input entry checked.
#[test]
fn blocked_gradients_match_finite_differences_in_f64() {
    let nk = 530;
    let mask = (0..2 * nk).map(|j| (j % 7 != 3) as u8 as f64).collect();
    check_finite_differences((2, 1, 70, nk, 16), mask, 53);
}

/// Analytic gradients of the fused op against central differences at every `stride`-th entry of
/// q, k and v; masked keys must get exactly zero gradient.
fn check_finite_differences(
    (b, h, nq, nk, d): (usize, usize, usize, usize, usize),
    mask: Vec<f64>,
    stride: usize,
) {
    let c = case(7, b, h, nq, nk, d, Some(mask.clone()), DType::F64);
    let (_, grads) = run(&c, AttentionImpl::Fused);
    let eps = 1e-6;
    let loss_with = |which: usize, i: usize, delta: f64| -> f64 {
        let mut ts: Vec<Vec<f64>> = [&c.q, &c.k, &c.v]
            .iter()
            .map(|v| {
                v.as_tensor()
                    .flatten_all()
                    .and_then(|t| t.to_vec1::<f64>())
                    .expect("flat")
            })
            .collect();
        ts[which][i] += delta;
        let shape_q = [b, h, nq, d];
        let shape_kv = [b, h, nk, d];
        let t = |i: usize, shape: &[usize]| {
            Tensor::from_vec(ts[i].clone(), shape, &Device::Cpu).expect("t")
        };
        let m = Tensor::from_vec(mask.clone(), (b, nk), &Device::Cpu).expect("mask");
        let out = attention(
            &t(0, &shape_q),
            &t(1, &shape_kv),
            &t(2, &shape_kv),
            Some(&m),
            AttentionImpl::Fused,
        )
        .expect("att");
        (out * &c.weights)
            .and_then(|t| t.sum_all())
            .and_then(|t| t.to_scalar::<f64>())
            .expect("loss")
    };
    for (which, grad) in grads.iter().enumerate() {
        for (i, &g) in grad.iter().enumerate().step_by(stride) {
            let numeric = (loss_with(which, i, eps) - loss_with(which, i, -eps)) / (2.0 * eps);
            assert!(
                (g - numeric).abs() < 1e-6 * (1.0 + numeric.abs()),
                "input {which} [{i}]: analytic {g} vs numeric {numeric}"
            );
        }
    }
    // Masked keys receive exactly zero gradient.
    for bi in 0..b {
        for hi in 0..h {
            for j in 0..nk {
                if mask[bi * nk + j] == 0.0 {
                    for kk in 0..d {
                        let at = ((bi * h + hi) * nk + j) * d + kk;
                        assert_eq!(grads[1][at], 0.0);
                        assert_eq!(grads[2][at], 0.0);
                    }
                }
            }
        }
    }
}

#[test]
fn a_fully_masked_row_gives_zeros_not_nan() {
    // Batch 0 has every key masked; batch 1 has all keys.
    let (b, h, nq, nk, d) = (2, 2, 3, 4, 8);
    let mask = vec![0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
    for how in [AttentionImpl::Fused, AttentionImpl::Composed] {
        let c = case(11, b, h, nq, nk, d, Some(mask.clone()), DType::F32);
        let (out, grads) = run(&c, how);
        let half = out.len() / 2;
        assert!(out[..half].iter().all(|&x| x == 0.0), "{how:?}");
        assert!(out[half..].iter().any(|&x| x != 0.0), "{how:?}");
        assert!(grads.iter().flatten().all(|g| g.is_finite()));
    }
    compare(&case(11, b, h, nq, nk, d, Some(mask), DType::F32), 1e-5);
}

#[test]
fn one_query_and_one_key_edge_cases() {
    // One key: the output is that key's value whatever the scores.
    let c = case(3, 1, 2, 5, 1, 4, None, DType::F32);
    let (out, _) = run(&c, AttentionImpl::Fused);
    let v =
        c.v.as_tensor()
            .flatten_all()
            .and_then(|t| t.to_dtype(DType::F64))
            .and_then(|t| t.to_vec1::<f64>())
            .expect("v");
    for head in 0..2 {
        for i in 0..5 {
            for kk in 0..4 {
                assert!((out[(head * 5 + i) * 4 + kk] - v[head * 4 + kk]).abs() < 1e-6);
            }
        }
    }
    compare(&c, 1e-5);
    compare(&case(4, 2, 1, 1, 37, 8, None, DType::F32), 1e-5);
    compare(&case(5, 1, 1, 1, 1, 1, None, DType::F32), 1e-5);
}

#[test]
fn large_scores_do_not_overflow() {
    // Scores of order 1e3 would overflow a naive exp; both implementations must stay finite and agree.
    let c = case(9, 1, 1, 4, 300, 16, None, DType::F32);
    let big = (c.q.as_tensor() * 60.0).expect("scale");
    let c = Case {
        q: Var::from_tensor(&big).expect("var"),
        ..c
    };
    compare(&c, 1e-4);
}
