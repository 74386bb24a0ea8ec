//! Test support shared by the encoder's test files: seeded values, and autograd checked against
//! central finite differences.

#![allow(dead_code)] // each test file uses part of it

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;

/// `n` values in [−1, 1) from a linear congruential generator seeded with `seed`.
pub fn values(seed: u64, n: usize) -> Vec<f64> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) as f64 / (1u64 << 31) as f64 * 2.0 - 1.0
        })
        .collect()
}

/// A tensor of `shape` filled with [`values`].
pub fn tensor(seed: u64, shape: &[usize], dtype: DType) -> Tensor {
    Tensor::from_vec(values(seed, shape.iter().product()), shape, &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .expect("tensor")
}

/// A seed from a parameter's name (FNV-1a): the same parameter gets the same values in every
/// process, whatever order the map (a `HashMap`) lists its entries in.
pub fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Sets every parameter to seeded values of scale 0.5, larger than the initialisation's, so that
/// every path carries signal.
pub fn randomise(varmap: &VarMap, dtype: DType) {
    for (name, var) in varmap.data().lock().expect("lock").iter() {
        let shape = var.dims().to_vec();
        var.set(&(tensor(name_seed(name), &shape, dtype) * 0.5).expect("scale"))
            .expect("set");
    }
}

/// The largest absolute difference between two tensors of one shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_dtype(DType::F64))
        .and_then(|d| d.to_scalar::<f64>())
        .expect("diff")
}

/// Every parameter of `varmap` by name, then `input` named "input".
pub fn with_input(varmap: &VarMap, input: &Var) -> Vec<(String, Var)> {
    let mut vars: Vec<(String, Var)> = varmap
        .data()
        .lock()
        .expect("lock")
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    vars.push(("input".into(), input.clone()));
    vars
}

/// Checks autograd of the f64 scalar `loss()` against central finite differences for a few
/// entries of each of `varmap`'s parameters and of `input`: `loss` must read the variables' current
/// values on every call.
pub fn check_gradients(varmap: &VarMap, input: &Var, loss: impl Fn() -> Tensor) {
    let grads = loss().backward().expect("backward");
    let value = || loss().to_scalar::<f64>().expect("loss");
    let eps = 1e-6;
    for (name, var) in &with_input(varmap, input) {
        let analytic = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"))
            .flatten_all()
            .and_then(|t| t.to_vec1::<f64>())
            .expect("grad");
        let base = var
            .as_tensor()
            .flatten_all()
            .and_then(|t| t.to_vec1::<f64>())
            .expect("v");
        // A few entries of each tensor, spread over it.
        for i in (0..base.len()).step_by(base.len().div_ceil(5)) {
            let at = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, var.dims(), &Device::Cpu).expect("t"))
                    .expect("set");
                let value = value();
                var.set(&Tensor::from_vec(base.clone(), var.dims(), &Device::Cpu).expect("t"))
                    .expect("reset");
                value
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            let tolerance = 1e-6 + 1e-5 * numeric.abs().max(analytic[i].abs());
            assert!(
                (numeric - analytic[i]).abs() <= tolerance,
                "{name}[{i}]: autograd {} vs finite difference {numeric}",
                analytic[i]
            );
        }
    }
}
