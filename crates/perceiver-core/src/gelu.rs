//! GELU (tanh approximation) as one custom op with a fused CPU forward and backward.
//!
//! candle's built-in `gelu` runs `tanh` (glibc's, through `expm1f`) elementwise, and its backward
//! composes about ten elementwise tensors, `powf` among them: in a training step of the default
//! model that was about 40 % of the single-thread time. Here
//! `gelu(x) = x·σ(2u)` with `u = √(2/π)·(x + 0.044715·x³)` (the same function, since
//! `½(1 + tanh u) = σ(2u)`), one `exp` per element forward and one backward, with
//! `gelu'(x) = σ + x·σ(1 − σ)·2u'`, `u' = √(2/π)·(1 + 3·0.044715·x²)`.
//! On devices other than the CPU, [`gelu`] falls back to candle's op.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu::storage::{contiguous, written_one};
use crate::cpu::{KernelFloat, vectorised};

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const CUBIC: f64 = 0.044_715;
/// Elements per parallel chunk: small tensors stay on one thread.
const CHUNK: usize = 16 * 1024;

/// GELU, tanh approximation (PyTorch's `gelu(approximate="tanh")`).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
        x.contiguous()?.apply_op1(GeluOp)
    } else {
        x.gelu()
    }
}

/// `(σ(2u), u')`: σ from `exp` of a non-positive argument only (`σ(z) = 1/(1 + e^(−z))` for
/// z ≥ 0, `e^z/(1 + e^z)` below), so f32 takes the kernels' branch-free, vectorisable `exp`
/// (relative error below 3e-7) and f64 the exact one.
#[inline(always)]
fn sigmoid_2u<T: KernelFloat>(x: T) -> (T, T) {
    let c = T::from(SQRT_2_OVER_PI).unwrap_or_else(T::one);
    let k = T::from(CUBIC).unwrap_or_else(T::zero);
    let two = T::one() + T::one();
    let z = two * c * (x + k * x * x * x);
    let e = T::exp_neg(-z.abs());
    let s = if z >= T::zero() { T::one() } else { e } / (T::one() + e);
    (s, c * (T::one() + (two + T::one()) * k * x * x))
}

fn forward<T: KernelFloat>(x: &[T]) -> Vec<T> {
    // SAFETY: the output's chunks pair with equally long chunks of `x`, and every element of
    // each is written.
    unsafe {
        written_one(x.len(), |out| {
            out.par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK))
                .for_each(|(o, x)| {
                    vectorised(|| {
                        for (o, &x) in o.iter_mut().zip(x) {
                            o.write(x * sigmoid_2u(x).0);
                        }
                    })
                })
        })
    }
}

fn backward<T: KernelFloat>(x: &[T], g: &[T]) -> Result<Vec<T>> {
    if x.len() != g.len() {
        candle_core::bail!(
            "gelu backward: {} gradients for {} inputs",
            g.len(),
            x.len()
        );
    }
    let two = T::one() + T::one();
    // SAFETY: as in `forward` (`g` is as long as `x`).
    Ok(unsafe {
        written_one(x.len(), |out| {
            out.par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
                .for_each(|(o, (x, g))| {
                    vectorised(|| {
                        for ((o, &x), &g) in o.iter_mut().zip(x).zip(g) {
                            let (s, du) = sigmoid_2u(x);
                            o.write(g * (s + x * s * (T::one() - s) * two * du));
                        }
                    })
                })
        })
    })
}

struct GeluOp;

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "gelu-tanh-fused"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match storage {
            CpuStorage::F32(d) => CpuStorage::F32(forward(contiguous(d, layout, "gelu")?)),
            CpuStorage::F64(d) => CpuStorage::F64(forward(contiguous(d, layout, "gelu")?)),
            _ => candle_core::bail!("gelu: only f32 and f64"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let g = grad_res.contiguous()?;
        Ok(Some(arg.contiguous()?.apply_op2_no_bwd(&g, &GeluGradOp)?))
    }
}

/// `grad_out · gelu'(x)`, in one pass.
struct GeluGradOp;

impl CustomOp2 for GeluGradOp {
    fn name(&self) -> &'static str {
        "gelu-tanh-fused-grad"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        g: &CpuStorage,
        g_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = match (x, g) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => CpuStorage::F32(backward(
                contiguous(x, x_layout, "gelu")?,
                contiguous(g, g_layout, "gelu")?,
            )?),
            (CpuStorage::F64(x), CpuStorage::F64(g)) => CpuStorage::F64(backward(
                contiguous(x, x_layout, "gelu")?,
                contiguous(g, g_layout, "gelu")?,
            )?),
            _ => candle_core::bail!("gelu backward: unsupported or mixed dtypes"),
        };
        Ok((out, x_layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernels against the tanh formula in f64, element by element, over several parallel
    /// chunks and a ragged last one. The outputs start as NaN in unit tests
    /// ([`crate::cpu::storage::written`]), so an element a kernel skips fails here.
    #[test]
    fn forward_and_backward_write_every_element_by_the_formula() -> Result<()> {
        let n = 2 * CHUNK + 37;
        let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.618).sin() * 6.0).collect();
        let g: Vec<f64> = (0..n).map(|i| (i as f64 * 0.17).cos()).collect();
        let y = forward(&x);
        let dx = backward(&x, &g)?;
        let gelu = |x: f64| 0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + CUBIC * x.powi(3))).tanh());
        for i in 0..n {
            let h = 1e-6;
            let slope = (gelu(x[i] + h) - gelu(x[i] - h)) / (2.0 * h);
            assert!((y[i] - gelu(x[i])).abs() < 1e-12, "y[{i}] = {}", y[i]);
            assert!((dx[i] - g[i] * slope).abs() < 1e-7, "dx[{i}] = {}", dx[i]);
        }
        assert!(backward(&x, &g[1..]).is_err());
        Ok(())
    }
}
