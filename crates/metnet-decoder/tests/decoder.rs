//! Decoder behaviour: monotone quantiles, per-lead-time self-attention, masked pinball loss.

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::{VarBuilder, VarMap};
use metnet_decoder::{DecoderConfig, MetNetDecoder, monotone, pinball_loss, softplus};

fn tensor(seed: u64, shape: &[usize]) -> Tensor {
    let mut x = seed.wrapping_add(17);
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((x >> 33) as f64 / (1u64 << 31) as f64 * 2.0 - 1.0) as f32
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor")
}

/// Sets every parameter from a seed derived from its name (candle's initialisation is unseeded,
/// and the map's order is a hash order), so that each test computes the same numbers every run.
fn seed_parameters(varmap: &VarMap) {
    for (name, var) in varmap.data().lock().expect("lock").iter() {
        let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        var.set(&(tensor(seed, var.dims()) * 0.3).expect("scale"))
            .expect("set");
    }
}

fn decoder() -> (VarMap, MetNetDecoder) {
    let (varmap, d, _) = variant(true, true);
    (varmap, d)
}

fn leads(k: usize) -> Tensor {
    Tensor::arange(1u32, k as u32 + 1, &Device::Cpu)
        .and_then(|t| t.to_dtype(DType::F32))
        .and_then(|t| t.affine(0.25, 0.0))
        .expect("leads")
}

fn vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("vec")
}

#[test]
fn quantiles_are_monotone_and_shaped() {
    let (_, d) = decoder();
    let out = d
        .forward(
            &tensor(1, &[2, 3, 4, 5]),
            &Tensor::ones((2, 3), DType::F32, &Device::Cpu).expect("m"),
            &leads(4),
            Some(&tensor(2, &[2, 7, 6])),
        )
        .expect("forward");
    assert_eq!(out.dims(), &[2, 3, 4, 3]);
    for row in vec(&out).chunks(3) {
        assert!(row[0] < row[1] && row[1] < row[2], "{row:?}");
    }
}

#[test]
fn padding_systems_do_not_change_real_ones() {
    let (_, d) = decoder();
    let queries = tensor(3, &[1, 2, 4, 5]);
    let bottleneck = tensor(4, &[1, 7, 6]);
    let mask = Tensor::new(&[[1f32, 0.]], &Device::Cpu).expect("mask");
    let a = d
        .forward(&queries, &mask, &leads(4), Some(&bottleneck))
        .expect("a");
    // Change the padded system's queries: the real system's forecast stays the same.
    let other = Tensor::cat(
        &[
            queries.i((.., 0..1)).expect("q0"),
            (queries.i((.., 1..2)).expect("q1") * 50.0).expect("x"),
        ],
        1,
    )
    .expect("cat");
    let b = d
        .forward(&other, &mask, &leads(4), Some(&bottleneck))
        .expect("b");
    let real = |t: &Tensor| vec(&t.i((.., 0..1)).expect("real"));
    for (x, y) in real(&a).iter().zip(real(&b)) {
        assert!((x - y).abs() < 1e-5);
    }
}

#[test]
fn lead_times_are_independent_batch_entries() {
    // The forecast for lead k does not depend on the queries of other lead times.
    let (_, d) = decoder();
    let queries = tensor(5, &[1, 2, 3, 5]);
    let mask = Tensor::ones((1, 2), DType::F32, &Device::Cpu).expect("m");
    let bottleneck = tensor(6, &[1, 7, 6]);
    let full = d
        .forward(&queries, &mask, &leads(3), Some(&bottleneck))
        .expect("full");
    let single = d
        .forward(
            &queries.i((.., .., 1..2)).expect("q"),
            &mask,
            &leads(3).i(1..2).expect("l"),
            Some(&bottleneck),
        )
        .expect("one");
    for (x, y) in vec(&full.i((.., .., 1..2)).expect("k1"))
        .iter()
        .zip(vec(&single))
    {
        assert!((x - y).abs() < 1e-5);
    }
}

#[test]
fn pinball_loss_matches_hand_computed_values_and_ignores_masked_targets() {
    // y = 1.0; predictions 0.5, 1.0, 2.0 for τ = 0.1, 0.5, 0.9:
    // τ=0.1: d=0.5 → 0.05; τ=0.5: d=0 → 0; τ=0.9: d=−1 → max(−0.9, 0.1) = 0.1. Mean = 0.05.
    let pred = Tensor::new(&[[0.5f32, 1.0, 2.0], [9.0, 9.0, 9.0]], &Device::Cpu).expect("p");
    let target = Tensor::new(&[1.0f32, 0.0], &Device::Cpu).expect("y");
    let mask = Tensor::new(&[1.0f32, 0.0], &Device::Cpu).expect("m");
    let loss = pinball_loss(&pred, &target, &mask, &[0.1, 0.5, 0.9])
        .and_then(|l| l.to_scalar::<f32>())
        .expect("loss");
    assert!((loss - 0.05).abs() < 1e-7, "{loss}");
    let none = pinball_loss(
        &pred,
        &target,
        &Tensor::zeros(2, DType::F32, &Device::Cpu).expect("z"),
        &[0.1, 0.5, 0.9],
    )
    .and_then(|l| l.to_scalar::<f32>())
    .expect("loss");
    assert_eq!(none, 0.0);
}

#[test]
fn softplus_is_stable_and_monotone_helper_is_cumulative() {
    let x = Tensor::new(&[-100f32, -1.0, 0.0, 1.0, 100.0], &Device::Cpu).expect("x");
    let y = vec(&softplus(&x).expect("sp"));
    let want = [
        0.0f32,
        0.313_261_7,
        std::f32::consts::LN_2,
        1.313_261_7,
        100.0,
    ];
    for (a, b) in y.iter().zip(want) {
        assert!((a - b).abs() < 1e-5, "{y:?}");
    }
    let raw = Tensor::new(&[[0.2f32, -30.0, 0.0]], &Device::Cpu).expect("raw");
    let q = vec(&monotone(&raw, 3).expect("m"));
    assert!(
        (q[0] - 0.2).abs() < 1e-7
            && q[1] >= q[0]
            && (q[2] - q[1] - std::f32::consts::LN_2).abs() < 1e-6
    );
}

#[test]
fn bad_quantiles_are_refused() {
    for q in [vec![], vec![0.5, 0.1], vec![0.0, 0.5], vec![0.5, 1.0]] {
        assert!(
            DecoderConfig {
                quantiles: q,
                ..DecoderConfig::new(5, 8, 6)
            }
            .validate()
            .is_err()
        );
    }
}

/// A decoder with the given switches, and its parameter names.
fn variant(film: bool, cross_attention: bool) -> (VarMap, MetNetDecoder, Vec<String>) {
    let varmap = VarMap::new();
    let config = DecoderConfig {
        blocks: 2,
        heads: 2,
        film,
        cross_attention,
        ..DecoderConfig::new(5, 8, 6)
    };
    let d = MetNetDecoder::new(
        &config,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .expect("decoder");
    seed_parameters(&varmap);
    let names = varmap
        .data()
        .lock()
        .expect("lock")
        .keys()
        .cloned()
        .collect();
    (varmap, d, names)
}

#[test]
fn without_film_the_lead_time_reaches_the_decoder_only_through_its_queries() {
    let (varmap, d, names) = variant(false, true);
    assert!(names.iter().all(|n| !n.contains("film")), "{names:?}");
    assert!(names.iter().any(|n| n.contains(".cross.")));
    let queries = tensor(7, &[2, 3, 4, 5]);
    let mask = Tensor::ones((2, 3), DType::F32, &Device::Cpu).expect("m");
    let bottleneck = tensor(8, &[2, 7, 6]);
    let out = d
        .forward(&queries, &mask, &leads(4), Some(&bottleneck))
        .expect("forward");
    assert_eq!(out.dims(), &[2, 3, 4, 3]);
    // The lead-time values themselves no longer change the output...
    let other_leads = (leads(4) * 3.0).expect("leads");
    let again = d
        .forward(&queries, &mask, &other_leads, Some(&bottleneck))
        .expect("forward");
    assert_eq!(vec(&out), vec(&again));
    // ...and every parameter still learns.
    let grads = out.sum_all().and_then(|s| s.backward()).expect("backward");
    for (name, var) in varmap.data().lock().expect("lock").iter() {
        let g = vec(grads.get(var.as_tensor()).expect("gradient"));
        assert!(g.iter().all(|x| x.is_finite()), "{name}");
    }
    // With FiLM, after one nudge of its output layer, the lead time matters.
    let (varmap, d, _) = variant(true, true);
    for (name, var) in varmap.data().lock().expect("lock").iter() {
        if name.contains("film") {
            var.set(&(var.as_tensor().ones_like().expect("ones") * 0.1).expect("x"))
                .expect("set");
        }
    }
    let a = d.forward(&queries, &mask, &leads(4), Some(&bottleneck));
    let b = d.forward(&queries, &mask, &other_leads, Some(&bottleneck));
    assert_ne!(vec(&a.expect("a")), vec(&b.expect("b")));
}

#[test]
fn without_cross_attention_the_decoder_needs_no_bottleneck_and_ignores_one() {
    let (_, d, names) = variant(true, false);
    assert!(
        names
            .iter()
            .all(|n| !n.contains(".cross.") && !n.contains("film_cross")),
        "{names:?}"
    );
    let queries = tensor(9, &[2, 3, 4, 5]);
    let mask = Tensor::ones((2, 3), DType::F32, &Device::Cpu).expect("m");
    let alone = d
        .forward(&queries, &mask, &leads(4), None)
        .expect("forward");
    assert_eq!(alone.dims(), &[2, 3, 4, 3]);
    let with = d
        .forward(&queries, &mask, &leads(4), Some(&tensor(10, &[2, 7, 6])))
        .expect("forward");
    assert_eq!(vec(&alone), vec(&with));
    // A decoder that cross-attends refuses to run without a bottleneck.
    let (_, cross, _) = variant(true, true);
    let err = cross
        .forward(&queries, &mask, &leads(4), None)
        .expect_err("refused");
    assert!(err.to_string().contains("needs a bottleneck"), "{err}");
}

/// A bottleneck per (example, lead time), the MetNet way: with K identical copies it gives the
/// shared bottleneck's forecast; with another bottleneck for one lead time only that lead's
/// forecasts change.
#[test]
fn a_bottleneck_per_lead_time_is_read_by_that_lead_time_only() {
    let (_, d) = decoder();
    let (b, s, k) = (2, 3, 4);
    let queries = tensor(1, &[b, s, k, 5]);
    let mask = Tensor::ones((b, s), DType::F32, &Device::Cpu).expect("m");
    let shared = tensor(2, &[b, 7, 6]);
    let out = d
        .forward(&queries, &mask, &leads(k), Some(&shared))
        .expect("shared");
    // [B, L, C] → [B·K, L, C], example-major.
    let copies = shared
        .unsqueeze(1)
        .and_then(|t| t.broadcast_as((b, k, 7, 6)))
        .and_then(|t| t.reshape((b * k, 7, 6)))
        .expect("copies");
    let per_lead = d
        .forward(&queries, &mask, &leads(k), Some(&copies))
        .expect("per lead");
    // The same numbers summed in another order: equal to f32 rounding of the outputs' scale.
    let scale = vec(&out).iter().fold(1f32, |m, x| m.max(x.abs()));
    let diff = vec(&(&out - &per_lead).expect("diff"));
    assert!(diff.iter().all(|x| x.abs() < 1e-5 * scale), "{diff:?}");

    // Example 1's lead 2 gets another bottleneck.
    let mut rows: Vec<Tensor> = (0..b * k).map(|i| copies.i(i).expect("row")).collect();
    rows[k + 2] = tensor(3, &[7, 6]);
    let changed = Tensor::stack(&rows, 0).expect("stack");
    let other = d
        .forward(&queries, &mask, &leads(k), Some(&changed))
        .expect("changed");
    for example in 0..b {
        for lead in 0..k {
            let a = vec(&out.i((example, .., lead)).expect("a"));
            let c = vec(&other.i((example, .., lead)).expect("c"));
            let moved = a.iter().zip(&c).any(|(x, y)| (x - y).abs() > 1e-5);
            assert_eq!(
                moved,
                (example, lead) == (1, 2),
                "example {example} lead {lead}"
            );
        }
    }
    // Any other row count is refused.
    let wrong = tensor(4, &[b * k + 1, 7, 6]);
    assert!(d.forward(&queries, &mask, &leads(k), Some(&wrong)).is_err());
}
