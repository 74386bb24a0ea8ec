//! LayerNorm over the last dimension as one custom op with a fused CPU forward and backward.
//!
//! Composed from candle ops, a LayerNorm is about eight full passes forward (mean, centre, square,
//! mean, add, sqrt, divide, scale, shift), each allocating its output, and more than twice that
//! backward. Here the forward is one pass per row (mean and variance, then the output) and the
//! backward recomputes each row's mean and `rstd = 1/√(var + ε)` and does one more:
//!
//! `x̂ = (x − μ)·rstd`, `ĝ = dy ∘ w`,
//! `dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ ∘ x̂))`, `dw = Σ_rows dy ∘ x̂`, `db = Σ_rows dy`.
//!
//! `dw` and `db` are summed per block of [`ROWS_PER_TASK`] rows and the blocks then in order, so
//! the result does not depend on the thread count. On devices other than the CPU, and for dtypes
//! other than f32/f64, [`layer_norm`] falls back to the composed ops.

use candle_core::{CpuStorage, CustomOp3, D, DType, Layout, Result, Shape, Tensor};
use num_traits::Float;
use rayon::prelude::*;

use crate::cpu::storage::{contiguous, with_slices, written_one};
use crate::cpu::{lane_sum, lane_sum2, vectorised};

/// Rows per parallel task (and per partial sum of `dw`, `db`).
const ROWS_PER_TASK: usize = 64;

/// `(x − mean) / √(var + eps) · weight + bias` over the last dimension of `x`; `weight` and `bias`
/// have that dimension's width.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let fused = x.device().is_cpu()
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && weight.dtype() == x.dtype()
        && bias.dtype() == x.dtype();
    if fused {
        x.contiguous()?.apply_op3(
            &weight.contiguous()?,
            &bias.contiguous()?,
            LayerNormOp { eps },
        )
    } else {
        composed_layer_norm(x, weight, bias, eps)
    }
}

/// The same function from candle ops (every one with a backward): the reference.
pub fn composed_layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = centred.broadcast_div(&(var + eps)?.sqrt()?)?;
    normed.broadcast_mul(weight)?.broadcast_add(bias)
}

/// Mean and `1/√(var + eps)` of one row (two passes: no cancellation).
#[inline(always)]
fn moments<T: Float>(row: &[T], eps: T) -> (T, T) {
    let n = T::from(row.len()).unwrap_or_else(T::one);
    let mean = lane_sum(row, |x| x) / n;
    let var = lane_sum(row, |x| (x - mean) * (x - mean)) / n;
    (mean, T::one() / (var + eps).sqrt())
}

/// Rows of `x` as wide as `w` and `b` (the op checks the shapes), normalised.
fn forward<T: Float + Send + Sync>(x: &[T], w: &[T], b: &[T], eps: T) -> Vec<T> {
    let c = w.len();
    if c == 0 {
        return vec![T::zero(); x.len()];
    }
    // SAFETY: `x.len()` is a multiple of `c` and `w`, `b` are `c` long, so the output's tasks
    // are whole rows, each paired with its row of `x`, and every element of every row is written.
    unsafe {
        written_one(x.len(), |out| {
            out.par_chunks_mut(c * ROWS_PER_TASK)
                .zip(x.par_chunks(c * ROWS_PER_TASK))
                .for_each(|(out, x)| {
                    vectorised(|| {
                        for (o, x) in out.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                            let (mean, rstd) = moments(x, eps);
                            for (((o, &x), &w), &b) in o.iter_mut().zip(x).zip(w).zip(b) {
                                o.write((x - mean) * rstd * w + b);
                            }
                        }
                    })
                })
        })
    }
}

/// `(dx, dw, db)`.
fn backward<T: Float + Send + Sync>(
    x: &[T],
    w: &[T],
    dy: &[T],
    eps: T,
) -> Result<(Vec<T>, Vec<T>, Vec<T>)> {
    let c = w.len();
    let n = T::from(c).unwrap_or_else(T::one);
    if dy.len() != x.len() {
        candle_core::bail!(
            "{OP} backward: {} gradients for {} inputs",
            dy.len(),
            x.len()
        );
    }
    if c == 0 {
        return Ok((vec![T::zero(); x.len()], Vec::new(), Vec::new()));
    }
    let mut partials: Vec<(Vec<T>, Vec<T>)> = Vec::new();
    // SAFETY: `x.len()` (= `dy.len()`) is a multiple of `c`, so each task is whole rows paired
    // with their rows of `x` and `dy`, and every element of each row of `dx` is written.
    let dx = unsafe {
        written_one(x.len(), |dx| {
            partials = dx
                .par_chunks_mut(c * ROWS_PER_TASK)
                .zip(x.par_chunks(c * ROWS_PER_TASK))
                .zip(dy.par_chunks(c * ROWS_PER_TASK))
                .map(|((dx, x), dy)| {
                    vectorised(|| {
                        let (mut dw, mut db) = (vec![T::zero(); c], vec![T::zero(); c]);
                        // One row's x̂ and ĝ = dy ∘ w.
                        let (mut xhat, mut g) = (vec![T::zero(); c], vec![T::zero(); c]);
                        for ((dx, x), dy) in dx
                            .chunks_exact_mut(c)
                            .zip(x.chunks_exact(c))
                            .zip(dy.chunks_exact(c))
                        {
                            let (mean, rstd) = moments(x, eps);
                            for ((((xh, g), &x), &dy), &w) in
                                xhat.iter_mut().zip(g.iter_mut()).zip(x).zip(dy).zip(w)
                            {
                                *xh = (x - mean) * rstd;
                                *g = dy * w;
                            }
                            for (((dw, db), &dy), &xh) in
                                dw.iter_mut().zip(db.iter_mut()).zip(dy).zip(&xhat)
                            {
                                *dw = *dw + dy * xh;
                                *db = *db + dy;
                            }
                            let mean_g = lane_sum(&g, |v| v) / n;
                            let mean_gx = lane_sum2(&g, &xhat, |a, b| a * b) / n;
                            for ((dx, &g), &xh) in dx.iter_mut().zip(&g).zip(&xhat) {
                                dx.write(rstd * (g - mean_g - xh * mean_gx));
                            }
                        }
                        (dw, db)
                    })
                })
                .collect();
        })
    };
    let (mut dw, mut db) = (vec![T::zero(); c], vec![T::zero(); c]);
    for (pw, pb) in &partials {
        for (a, &p) in dw.iter_mut().zip(pw) {
            *a = *a + p;
        }
        for (a, &p) in db.iter_mut().zip(pb) {
            *a = *a + p;
        }
    }
    Ok((dx, dw, db))
}

/// The op's name in errors.
const OP: &str = "layer norm";

/// `(dx, dw, db)` as tensors, from contiguous CPU `x`, `w` and `dy`.
fn backward_tensors<T: Float + Send + Sync + candle_core::WithDType>(
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let eps = T::from(eps).unwrap_or_else(T::epsilon);
    let (dx, dw, db) = with_slices([x, w, dy], OP, |[x, w, dy]| backward(x, w, dy, eps))??;
    Ok((
        Tensor::from_vec(dx, x.shape(), x.device())?,
        Tensor::from_vec(dw, w.shape(), w.device())?,
        Tensor::from_vec(db, w.shape(), w.device())?,
    ))
}

struct LayerNormOp {
    eps: f64,
}

fn check(x: &Layout, w: &Layout, b: &Layout) -> Result<()> {
    let c = x.shape().dims().last().copied().unwrap_or(0);
    if w.shape().dims() != [c] || b.shape().dims() != [c] {
        candle_core::bail!(
            "layer norm: input {:?}, weight {:?}, bias {:?}: weight and bias must be [{c}]",
            x.shape(),
            w.shape(),
            b.shape()
        );
    }
    Ok(())
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "layer-norm-fused"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        check(xl, wl, bl)?;
        let out = match (x, w, b) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                CpuStorage::F32(forward(
                    contiguous(x, xl, OP)?,
                    contiguous(w, wl, OP)?,
                    contiguous(b, bl, OP)?,
                    self.eps as f32,
                ))
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                CpuStorage::F64(forward(
                    contiguous(x, xl, OP)?,
                    contiguous(w, wl, OP)?,
                    contiguous(b, bl, OP)?,
                    self.eps,
                ))
            }
            _ => candle_core::bail!("layer norm: only f32 and f64, all the same"),
        };
        Ok((out, xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _out: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let (dx, dw, db) = match x.dtype() {
            DType::F32 => backward_tensors::<f32>(x, w, &dy, self.eps)?,
            DType::F64 => backward_tensors::<f64>(x, w, &dy, self.eps)?,
            other => candle_core::bail!("layer norm backward: unsupported dtype {other:?}"),
        };
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernels against the definitions, row by row, over several parallel tasks and a ragged
    /// last one. The outputs start as NaN in unit tests ([`crate::cpu::storage::written`]), so an
    /// element a kernel skips fails here.
    #[test]
    fn forward_and_backward_write_every_element_by_the_definition() -> Result<()> {
        let (rows, c, eps) = (2 * ROWS_PER_TASK + 3, 5, 1e-5);
        let x: Vec<f64> = (0..rows * c)
            .map(|i| (i as f64 * 0.618).sin() * 3.0)
            .collect();
        let dy: Vec<f64> = (0..rows * c).map(|i| (i as f64 * 0.17).cos()).collect();
        let w = [0.5, -1.0, 2.0, 1.5, 0.25];
        let b = [0.1, 0.2, -0.3, 0.0, 1.0];
        let y = forward(&x, &w, &b, eps);
        let (dx, dw, db) = backward(&x, &w, &dy, eps)?;
        let (mut dw_want, mut db_want) = ([0.0; 5], [0.0; 5]);
        for r in 0..rows {
            let row = &x[r * c..(r + 1) * c];
            let mean = row.iter().sum::<f64>() / c as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / c as f64;
            let rstd = 1.0 / (var + eps).sqrt();
            let xhat: Vec<f64> = row.iter().map(|v| (v - mean) * rstd).collect();
            let g: Vec<f64> = (0..c).map(|j| dy[r * c + j] * w[j]).collect();
            let mean_g = g.iter().sum::<f64>() / c as f64;
            let mean_gx = g.iter().zip(&xhat).map(|(g, h)| g * h).sum::<f64>() / c as f64;
            for j in 0..c {
                let i = r * c + j;
                assert!(
                    (y[i] - (xhat[j] * w[j] + b[j])).abs() < 1e-12,
                    "y[{i}] = {}",
                    y[i]
                );
                let want = rstd * (g[j] - mean_g - xhat[j] * mean_gx);
                assert!((dx[i] - want).abs() < 1e-12, "dx[{i}] = {}", dx[i]);
                dw_want[j] += dy[i] * xhat[j];
                db_want[j] += dy[i];
            }
        }
        for j in 0..c {
            assert!((dw[j] - dw_want[j]).abs() < 1e-9 && (db[j] - db_want[j]).abs() < 1e-9);
        }
        assert!(backward(&x, &w, &dy[1..], eps).is_err());
        Ok(())
    }
}
