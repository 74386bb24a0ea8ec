//! Layers: Fourier features, FiLM identity at initialisation and with repeating conditions,
//! LayerNorm gradients against finite differences, gradients reaching every parameter of a block,
//! and attention to a single key.

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use perceiver_core::FourierFeatures;
use perceiver_core::layers::{
    Activation, AttentionBlock, BlockConfig, Film, LayerNorm, MultiHeadAttention,
};

fn ramp(n: usize, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|i| ((i * 7919) % 97) as f64 / 97.0 * scale - scale / 2.0)
        .collect()
}

#[test]
fn fourier_features_follow_the_perceiver_layout() {
    let ff = FourierFeatures {
        dims: 2,
        bands: 3,
        max_freq: 4.0,
    };
    assert_eq!(ff.frequencies(), vec![1.0, 1.5, 2.0]);
    assert_eq!(ff.output_dim(), 14);
    let x = Tensor::new(&[[0.5f64, -0.25]], &Device::Cpu).expect("x");
    let got = ff
        .encode(&x)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .expect("encode");
    let pi = std::f64::consts::PI;
    let mut want = Vec::new();
    for x in [0.5f64, -0.25] {
        want.push(x);
        want.extend([1.0, 1.5, 2.0].map(|f| (pi * f * x).sin()));
        want.extend([1.0, 1.5, 2.0].map(|f| (pi * f * x).cos()));
    }
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
    }
}

#[test]
fn film_is_the_identity_when_new() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let film = Film::new(5, 8, vb).expect("film");
    let x = Tensor::from_vec(ramp(2 * 3 * 8, 4.0), (2, 3, 8), &Device::Cpu)
        .and_then(|t| t.to_dtype(DType::F32))
        .expect("x");
    let cond = Tensor::from_vec(ramp(2 * 5, 2.0), (2, 5), &Device::Cpu)
        .and_then(|t| t.to_dtype(DType::F32))
        .expect("c");
    let y = film.forward(&x, &cond).expect("forward");
    let diff = (y - &x)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f32>())
        .expect("diff");
    assert_eq!(diff, 0.0);
}

#[test]
fn layer_norm_gradient_matches_finite_differences() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let ln = LayerNorm::new(6, vb).expect("ln");
    let data = ramp(3 * 6, 3.0);
    let weights = Tensor::from_vec(ramp(3 * 6, 1.7), (3, 6), &Device::Cpu).expect("w");
    let loss = |d: &[f64]| -> f64 {
        let x = Tensor::from_vec(d.to_vec(), (3, 6), &Device::Cpu).expect("x");
        (ln.forward(&x).expect("ln") * &weights)
            .and_then(|t| t.sum_all())
            .and_then(|t| t.to_scalar::<f64>())
            .expect("loss")
    };
    let x = Var::from_tensor(&Tensor::from_vec(data.clone(), (3, 6), &Device::Cpu).expect("x"))
        .expect("var");
    let l = (ln.forward(x.as_tensor()).expect("ln") * &weights)
        .and_then(|t| t.sum_all())
        .expect("loss");
    let g = l.backward().expect("backward");
    let grad = g
        .get(x.as_tensor())
        .expect("grad")
        .flatten_all()
        .and_then(|t| t.to_vec1::<f64>())
        .expect("flat");
    for i in 0..data.len() {
        let (mut up, mut down) = (data.clone(), data.clone());
        up[i] += 1e-6;
        down[i] -= 1e-6;
        let numeric = (loss(&up) - loss(&down)) / 2e-6;
        assert!(
            (grad[i] - numeric).abs() < 1e-6,
            "[{i}] {} vs {numeric}",
            grad[i]
        );
    }
}

#[test]
fn every_parameter_of_a_block_receives_a_finite_nonzero_gradient() {
    for activation in [Activation::Gelu, Activation::SquaredRelu] {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let config = BlockConfig {
            dim: 8,
            context_dim: 6,
            heads: 2,
            widening: 2,
            activation,
        };
        let cross = AttentionBlock::cross(config, vb.pp("cross")).expect("cross");
        let selfb = AttentionBlock::self_attention(config, vb.pp("self")).expect("self");
        let f32t = |n: usize, shape: &[usize], s: f64| {
            Tensor::from_vec(ramp(n, s), shape, &Device::Cpu)
                .and_then(|t| t.to_dtype(DType::F32))
                .expect("t")
        };
        let x = f32t(2 * 3 * 8, &[2, 3, 8], 2.0);
        let ctx = f32t(2 * 5 * 6, &[2, 5, 6], 2.0);
        let mask = Tensor::new(
            &[[1f32, 1., 0., 1., 1.], [1., 1., 1., 1., 0.]],
            &Device::Cpu,
        )
        .expect("mask");
        let y = cross
            .forward_cross(&x, &ctx, Some(&mask))
            .and_then(|y| selfb.forward_self(&y, None))
            .expect("forward");
        let loss = (y * f32t(2 * 3 * 8, &[2, 3, 8], 1.3))
            .and_then(|t| t.sum_all())
            .expect("loss");
        let grads = loss.backward().expect("backward");
        let vars = varmap.data().lock().expect("lock");
        assert!(vars.len() >= 20, "{}", vars.len());
        for (name, var) in vars.iter() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name} has no gradient"));
            let v = g
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .expect("flat");
            assert!(v.iter().all(|x| x.is_finite()), "{name}");
            assert!(
                v.iter().any(|&x| x != 0.0),
                "{name} has an all-zero gradient"
            );
        }
    }
}

/// The fused GELU against candle's (the same tanh approximation), values and gradients by
/// autograd, and its gradient against central finite differences in f64, over a range that
/// covers both tails.
#[test]
fn fused_gelu_matches_candle_and_finite_differences() {
    use candle_core::{DType, Device, Tensor, Var};
    let xs: Vec<f64> = (0..401).map(|i| -10.0 + i as f64 * 0.05).collect();
    let x = Var::from_tensor(&Tensor::new(xs.as_slice(), &Device::Cpu).expect("x")).expect("var");
    let ours = perceiver_core::gelu::gelu(x.as_tensor()).expect("gelu");
    let theirs = x.as_tensor().gelu().expect("candle gelu");
    let diff = (&ours - &theirs)
        .expect("d")
        .abs()
        .expect("abs")
        .max_all()
        .expect("max");
    assert!(
        diff.to_scalar::<f64>().expect("s") < 1e-12,
        "forward differs by {diff}"
    );
    let grad_of_sum = |y: &Tensor| {
        y.sum_all()
            .and_then(|s| s.backward())
            .and_then(|g| g.get(x.as_tensor()).expect("grad").to_vec1::<f64>())
            .expect("gradient")
    };
    let (g_ours, g_theirs) = (grad_of_sum(&ours), grad_of_sum(&theirs));
    let h = 1e-6;
    let f = |v: f64| {
        let t = Tensor::new(&[v], &Device::Cpu).expect("t");
        perceiver_core::gelu::gelu(&t)
            .expect("g")
            .to_vec1::<f64>()
            .expect("v")[0]
    };
    for (i, &v) in xs.iter().enumerate() {
        let fd = (f(v + h) - f(v - h)) / (2.0 * h);
        assert!(
            (g_ours[i] - fd).abs() < 1e-8,
            "x = {v}: grad {} vs finite difference {fd}",
            g_ours[i]
        );
        // candle's backward uses rounded constants (0.0356774, 0.797885): close, not exact.
        assert!(
            (g_ours[i] - g_theirs[i]).abs() < 1e-6,
            "x = {v}: grad {} vs candle {}",
            g_ours[i],
            g_theirs[i]
        );
    }
    // f32 stays finite at the extremes.
    let big = Tensor::new(&[-1e4f32, -50.0, 50.0, 1e4], &Device::Cpu).expect("t");
    let y = perceiver_core::gelu::gelu(&big)
        .expect("g")
        .to_vec1::<f32>()
        .expect("v");
    assert!(y.iter().all(|v| v.is_finite()), "{y:?}");
    let _ = DType::F32;
}

/// Output and the gradients of x, weight and bias of `sum(ln(x) · r)` for one implementation.
fn layer_norm_run(fused: bool, x: &Var, w: &Var, b: &Var, r: &Tensor) -> (Vec<f64>, [Vec<f64>; 3]) {
    let f = if fused {
        perceiver_core::layer_norm::layer_norm
    } else {
        perceiver_core::layer_norm::composed_layer_norm
    };
    let out = f(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5).expect("layer norm");
    let grads = (&out * r)
        .and_then(|t| t.sum_all())
        .and_then(|t| t.backward())
        .expect("backward");
    let flat = |t: &Tensor| {
        t.to_dtype(DType::F64)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f64>())
            .expect("flat")
    };
    let g = |v: &Var| flat(grads.get(v.as_tensor()).expect("gradient"));
    (flat(&out), [g(x), g(w), g(b)])
}

/// The fused LayerNorm against the composed ops: values and all three gradients, over enough rows
/// for several parallel tasks (their `dw`/`db` partial sums), with a non-trivial weight and bias;
/// then its weight and bias gradients against finite differences in f64.
#[test]
fn fused_layer_norm_matches_composed_ops_and_finite_differences() {
    let var = |data: Vec<f64>, shape: &[usize], dtype: DType| {
        Var::from_tensor(
            &Tensor::from_vec(data, shape, &Device::Cpu)
                .and_then(|t| t.to_dtype(dtype))
                .expect("t"),
        )
        .expect("var")
    };
    let (rows, c) = (5 * 70, 24);
    let x = var(ramp(rows * c, 6.0), &[5, 70, c], DType::F32);
    let w = var(
        ramp(c, 2.0).iter().map(|v| v + 1.0).collect(),
        &[c],
        DType::F32,
    );
    let b = var(ramp(c + 3, 1.0)[3..].to_vec(), &[c], DType::F32);
    let r = Tensor::from_vec(
        ramp(rows * c + 11, 2.0)[11..].to_vec(),
        (5, 70, c),
        &Device::Cpu,
    )
    .and_then(|t| t.to_dtype(DType::F32))
    .expect("r");
    let (out_f, grads_f) = layer_norm_run(true, &x, &w, &b, &r);
    let (out_c, grads_c) = layer_norm_run(false, &x, &w, &b, &r);
    let close = |what: &str, a: &[f64], b: &[f64], tol: f64| {
        for (i, (&p, &q)) in a.iter().zip(b).enumerate() {
            assert!(
                (p - q).abs() <= tol * (1.0 + q.abs()),
                "{what}[{i}]: fused {p} vs composed {q}"
            );
        }
    };
    close("out", &out_f, &out_c, 1e-5);
    for (name, (f, c)) in ["dx", "dw", "db"].iter().zip(grads_f.iter().zip(&grads_c)) {
        close(name, f, c, 1e-4);
    }

    // Finite differences in f64 for the weight and bias (x is covered above and by
    // `layer_norm_gradient_matches_finite_differences`).
    let (rows, c) = (4, 5);
    let xd = ramp(rows * c, 3.0);
    let (wd, bd) = (ramp(c, 1.5), ramp(c + 2, 0.7)[2..].to_vec());
    let rd = Tensor::from_vec(
        ramp(rows * c + 5, 1.3)[5..].to_vec(),
        (rows, c),
        &Device::Cpu,
    )
    .expect("r");
    let loss = |w: &[f64], b: &[f64]| -> f64 {
        let t = |d: &[f64], shape: &[usize]| {
            Tensor::from_vec(d.to_vec(), shape, &Device::Cpu).expect("t")
        };
        let out = perceiver_core::layer_norm::layer_norm(
            &t(&xd, &[rows, c]),
            &t(w, &[c]),
            &t(b, &[c]),
            1e-5,
        )
        .expect("ln");
        (out * &rd)
            .and_then(|t| t.sum_all())
            .and_then(|t| t.to_scalar::<f64>())
            .expect("loss")
    };
    let (x, w, b) = (
        var(xd.clone(), &[rows, c], DType::F64),
        var(wd.clone(), &[c], DType::F64),
        var(bd.clone(), &[c], DType::F64),
    );
    let (_, [_, dw, db]) = layer_norm_run(true, &x, &w, &b, &rd);
    for i in 0..c {
        let step = |v: &[f64], by: f64| {
            let mut v = v.to_vec();
            v[i] += by;
            v
        };
        let numeric_w = (loss(&step(&wd, 1e-6), &bd) - loss(&step(&wd, -1e-6), &bd)) / 2e-6;
        let numeric_b = (loss(&wd, &step(&bd, 1e-6)) - loss(&wd, &step(&bd, -1e-6))) / 2e-6;
        assert!(
            (dw[i] - numeric_w).abs() < 1e-6,
            "dw[{i}] {} vs {numeric_w}",
            dw[i]
        );
        assert!(
            (db[i] - numeric_b).abs() < 1e-6,
            "db[{i}] {} vs {numeric_b}",
            db[i]
        );
    }
}

/// A fresh f64 parameter map whose every parameter is set from `ramp`, so FiLM's zero-initialised
/// output layer is not zero and every layer does something.
fn ramped_vars(varmap: &VarMap) {
    // By name, not by the map's (hash) order, so every process sets the same values.
    let vars = varmap.data().lock().expect("lock");
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for (i, var) in names.iter().map(|n| &vars[*n]).enumerate() {
        let n = var.elem_count();
        let values = Tensor::from_vec(ramp(n + i, 0.8)[i..].to_vec(), var.shape(), &Device::Cpu)
            .expect("values");
        var.set(&values).expect("set");
    }
}

fn max_abs_difference(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f64>())
        .expect("difference")
}

#[test]
fn film_with_repeating_conditions_equals_film_with_them_repeated() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let film = Film::new(5, 8, vb).expect("film");
    ramped_vars(&varmap);
    // 3 examples × 4 conditions, 2 rows each.
    let (r, k) = (3, 4);
    let x = Var::from_tensor(
        &Tensor::from_vec(ramp(r * k * 2 * 8, 3.0), (r * k, 2, 8), &Device::Cpu).expect("x"),
    )
    .expect("var");
    let cond = Tensor::from_vec(ramp(k * 5, 2.0), (k, 5), &Device::Cpu).expect("cond");
    let repeated = cond
        .unsqueeze(0)
        .and_then(|c| c.broadcast_as((r, k, 5)))
        .and_then(|c| c.reshape((r * k, 5)))
        .expect("repeated");
    let upstream =
        Tensor::from_vec(ramp(r * k * 2 * 8, 1.0), (r * k, 2, 8), &Device::Cpu).expect("upstream");
    let run = |y: Tensor| {
        let grads = (&y * &upstream)
            .and_then(|p| p.sum_all())
            .and_then(|l| l.backward())
            .expect("backward");
        let mut g = vec![grads.get(&x).expect("dx").clone()];
        for (_, var) in varmap.data().lock().expect("lock").iter() {
            g.push(grads.get(var).expect("parameter gradient").clone());
        }
        (y, g)
    };
    let (y, grads) = run(film.forward_repeating(&x, &cond).expect("repeating"));
    let (y_ref, grads_ref) = run(film.forward(&x, &repeated).expect("forward"));
    assert!(max_abs_difference(&y, &y_ref) < 1e-12);
    assert!(max_abs_difference(&y, &x) > 0.1, "the FiLM does something");
    for (g, g_ref) in grads.iter().zip(&grads_ref) {
        assert!(max_abs_difference(g, g_ref) < 1e-12);
    }
    let wrong = Tensor::zeros((5, 5), DType::F64, &Device::Cpu).expect("cond");
    assert!(
        film.forward_repeating(&x, &wrong).is_err(),
        "12 rows, 5 conditions"
    );
}

#[test]
fn attention_to_one_key_is_its_value_and_a_masked_key_gives_zero() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let attention = MultiHeadAttention::new(8, 6, 2, vb).expect("attention");
    ramped_vars(&varmap);
    let b = 3;
    let x = Tensor::from_vec(ramp(b * 2 * 8, 3.0), (b, 2, 8), &Device::Cpu).expect("x");
    let context = Tensor::from_vec(ramp(b * 6, 2.0), (b, 1, 6), &Device::Cpu).expect("context");
    let mask = Tensor::new(&[1.0f64, 0.0, 1.0], &Device::Cpu)
        .and_then(|m| m.reshape((b, 1)))
        .expect("mask");
    // Two queries take the attention op; the first alone takes the one-key shortcut.
    let both = attention
        .forward(&x, &context, Some(&mask))
        .expect("two queries");
    let first = x.narrow(1, 0, 1).expect("first");
    let alone = attention
        .forward(&first, &context, Some(&mask))
        .expect("one query");
    let both_first = both.narrow(1, 0, 1).expect("narrow");
    assert!(max_abs_difference(&alone, &both_first) < 1e-12);
    // Both queries read the same value, whatever they are.
    assert!(max_abs_difference(&both_first, &both.narrow(1, 1, 1).expect("second")) < 1e-12);
    // The masked example's output is the output projection of zero: its bias.
    let bias = varmap
        .data()
        .lock()
        .expect("lock")
        .get("o.bias")
        .expect("o.bias")
        .as_tensor()
        .reshape((1, 1, 8))
        .expect("bias");
    assert!(max_abs_difference(&alone.narrow(0, 1, 1).expect("masked"), &bias) < 1e-12);
    assert!(max_abs_difference(&alone.narrow(0, 0, 1).expect("kept"), &bias) > 0.01);
}
