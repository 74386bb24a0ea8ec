//! Adding a bias row to every row, as one custom op whose backward sums the rows itself.
//!
//! `x.broadcast_add(b)` is correct, but its backward sums the gradient over every leading
//! dimension with candle's general reduction, which computes each element's destination with a
//! division per reduced dimension (candle-core 0.11, `ReduceSum::fold_impl`: only a reduction
//! over the *last* dimensions has a fast path). Every linear layer's bias takes that path: in the
//! default model's decoder (1,024 rows per layer) it was a quarter of the backward's time. Here
//! the backward passes `dy` through for `x` and sums its rows for `b` in one vectorisable pass:
//!
//! `y = x + b` (b broadcast over rows), `dx = dy`, `db = Σ_rows dy`.
//!
//! `db` is summed per block of [`ROWS_PER_TASK`] rows and the blocks then in order, so it does not
//! depend on the thread count. On devices other than the CPU, and for dtypes other than
//! f32/f64, [`add_bias`] is `broadcast_add`.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use num_traits::Float;
use rayon::prelude::*;

use crate::cpu::storage::{contiguous, with_slices, written_one};
use crate::cpu::vectorised;

/// Rows per parallel task (and per partial sum of `db`).
const ROWS_PER_TASK: usize = 256;

/// The op's name in errors.
const OP: &str = "bias add";

/// `x + b` with `b` of `x`'s last dimension's width, added to every row.
pub fn add_bias(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    let fused = x.device().is_cpu()
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && b.dtype() == x.dtype();
    if fused {
        x.contiguous()?.apply_op2(&b.contiguous()?, BiasAdd)
    } else {
        x.broadcast_add(b)
    }
}

/// `x` repeated `times` times along a new leading dimension: `[times, ..x's shape]`. The same as
/// `x.unsqueeze(0)?.broadcast_as(..)`, but its backward sums the copies in one pass (a bias
/// added to zeros), where the broadcast's takes candle's slow general reduction.
pub fn repeat(x: &Tensor, times: usize) -> Result<Tensor> {
    let zeros = Tensor::zeros((times, x.elem_count()), x.dtype(), x.device())?;
    let mut dims = vec![times];
    dims.extend_from_slice(x.dims());
    add_bias(&zeros, &x.flatten_all()?)?.reshape(dims)
}

/// `x + b` on rows of `x` as wide as `b` (the op checks that `x` is made of such rows).
fn forward<T: Float + Send + Sync>(x: &[T], b: &[T]) -> Vec<T> {
    let c = b.len();
    if c == 0 {
        return vec![T::zero(); x.len()];
    }
    // SAFETY: `x.len()` is a multiple of `c`, so the output's tasks are whole rows, each paired
    // with its row of `x`, and every element of every row is written.
    unsafe {
        written_one(x.len(), |out| {
            out.par_chunks_mut(c * ROWS_PER_TASK)
                .zip(x.par_chunks(c * ROWS_PER_TASK))
                .for_each(|(out, x)| {
                    vectorised(|| {
                        for (o, x) in out.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                            for ((o, &x), &b) in o.iter_mut().zip(x).zip(b) {
                                o.write(x + b);
                            }
                        }
                    })
                })
        })
    }
}

/// `Σ_rows dy`, for rows of width `c`.
fn sum_rows<T: Float + Send + Sync>(dy: &[T], c: usize) -> Vec<T> {
    if c == 0 {
        return Vec::new();
    }
    let partials: Vec<Vec<T>> = dy
        .par_chunks(c * ROWS_PER_TASK)
        .map(|dy| {
            vectorised(|| {
                let mut sum = vec![T::zero(); c];
                for row in dy.chunks_exact(c) {
                    for (s, &d) in sum.iter_mut().zip(row) {
                        *s = *s + d;
                    }
                }
                sum
            })
        })
        .collect();
    let mut sum = vec![T::zero(); c];
    for partial in &partials {
        for (s, &p) in sum.iter_mut().zip(partial) {
            *s = *s + p;
        }
    }
    sum
}

struct BiasAdd;

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "bias-add"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let c = xl.shape().dims().last().copied().unwrap_or(0);
        if bl.shape().dims() != [c] {
            candle_core::bail!(
                "bias add: input {:?}, bias {:?}: the bias must be [{c}]",
                xl.shape(),
                bl.shape()
            );
        }
        let out = match (x, b) {
            (CpuStorage::F32(x), CpuStorage::F32(b)) => {
                CpuStorage::F32(forward(contiguous(x, xl, OP)?, contiguous(b, bl, OP)?))
            }
            (CpuStorage::F64(x), CpuStorage::F64(b)) => {
                CpuStorage::F64(forward(contiguous(x, xl, OP)?, contiguous(b, bl, OP)?))
            }
            _ => candle_core::bail!("bias add: only f32 and f64, both the same"),
        };
        Ok((out, xl.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        b: &Tensor,
        _out: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let c = b.elem_count();
        let db = match dy.dtype() {
            DType::F32 => Tensor::from_vec(
                with_slices::<f32, _, 1>([&dy], OP, |[dy]| sum_rows(dy, c))?,
                b.shape(),
                b.device(),
            )?,
            DType::F64 => Tensor::from_vec(
                with_slices::<f64, _, 1>([&dy], OP, |[dy]| sum_rows(dy, c))?,
                b.shape(),
                b.device(),
            )?,
            other => candle_core::bail!("bias add backward: unsupported dtype {other:?}"),
        };
        Ok((Some(dy), Some(db)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The op and `broadcast_add` agree forward and backward, for 2-D and 3-D inputs, a
    /// non-contiguous input, and more rows than one task holds. In f64: the two sum rows in
    /// different orders, which in f32 differ by more than the tolerance on 2,100 random rows.
    #[test]
    fn equals_broadcast_add_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        for dims in [vec![3usize, 5], vec![7, 300, 4], vec![2, 1, 9]] {
            let c = *dims.last().unwrap_or(&1);
            let x = Var::from_tensor(&Tensor::randn(0f64, 1.0, dims.as_slice(), &dev)?)?;
            let b = Var::from_tensor(&Tensor::randn(0f64, 1.0, c, &dev)?)?;
            let upstream = Tensor::randn(0f64, 1.0, dims.as_slice(), &dev)?;
            let grads = |y: Tensor| -> Result<(Tensor, Tensor, Tensor)> {
                let g = (&y * &upstream)?.sum_all()?.backward()?;
                let gx = g
                    .get(&x)
                    .cloned()
                    .ok_or_else(|| candle_core::Error::Msg("dx".into()))?;
                let gb = g
                    .get(&b)
                    .cloned()
                    .ok_or_else(|| candle_core::Error::Msg("db".into()))?;
                Ok((y, gx, gb))
            };
            let (y, gx, gb) = grads(add_bias(&x, &b)?)?;
            let (y_ref, gx_ref, gb_ref) = grads(x.broadcast_add(&b)?)?;
            for (name, a, r) in [
                ("y", &y, &y_ref),
                ("dx", &gx, &gx_ref),
                ("db", &gb, &gb_ref),
            ] {
                let diff = (a - r)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
                assert!(diff < 1e-4, "{dims:?} {name}: {diff}");
            }
        }
        // A transposed (non-contiguous) input.
        let x = Tensor::arange(0f32, 6.0, &dev)?.reshape((2, 3))?.t()?;
        let b = Tensor::new(&[10f32, 20.0], &dev)?;
        assert_eq!(
            add_bias(&x, &b)?.to_vec2::<f32>()?,
            [[10.0, 23.0], [11.0, 24.0], [12.0, 25.0]]
        );
        Ok(())
    }

    #[test]
    fn repeat_equals_broadcast_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f64, 1.0, (3, 4, 5), &dev)?)?;
        let upstream = Tensor::randn(0f64, 1.0, (6, 3, 4, 5), &dev)?;
        let run = |y: Tensor| -> Result<(Tensor, Tensor)> {
            let g = (&y * &upstream)?.sum_all()?.backward()?;
            let gx = g
                .get(&x)
                .cloned()
                .ok_or_else(|| candle_core::Error::Msg("dx".into()))?;
            Ok((y, gx))
        };
        let (y, gx) = run(repeat(&x, 6)?)?;
        let (y_ref, gx_ref) = run(x.unsqueeze(0)?.broadcast_as((6, 3, 4, 5))?)?;
        assert_eq!(y.dims(), &[6, 3, 4, 5]);
        for (a, r) in [(&y, &y_ref), (&gx, &gx_ref)] {
            let diff = (a - r)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
            assert!(diff < 1e-5, "{diff}");
        }
        Ok(())
    }

    #[test]
    fn a_bias_of_the_wrong_width_is_refused() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 3), DType::F32, &dev)?;
        let b = Tensor::zeros(4, DType::F32, &dev)?;
        let err = add_bias(&x, &b).expect_err("wrong width");
        assert!(err.to_string().contains("must be [3]"), "{err}");
        Ok(())
    }
}
