//! What every CPU attention kernel works on: the float types, the shapes, and the inputs and
//! gradients of one (batch, head).

use num_traits::Float;

/// A float type the kernels run in.
pub trait KernelFloat:
    Float + Send + Sync + std::iter::Sum + std::ops::AddAssign + std::ops::MulAssign + 'static
{
    /// `exp(x)` for `x <= 0`, as used on shifted scores; may be a vectorisable approximation.
    fn exp_neg(x: Self) -> Self;
}

impl KernelFloat for f64 {
    fn exp_neg(x: f64) -> f64 {
        x.exp()
    }
}

impl KernelFloat for f32 {
    /// exp for x ≤ 0 by range reduction to 2^n · e^r, |r| ≤ ln2/2, and a degree-6 polynomial:
    /// relative error below 3e-7, no branches, so the loops around it vectorise. `n` is rounded
    /// half to even, which is one instruction (`vrndscaleps`); half away from zero (`round`) is
    /// not, and kept the loops around it scalar.
    #[inline(always)]
    fn exp_neg(x: f32) -> f32 {
        let x = x.max(-87.0);
        let n = (x * std::f32::consts::LOG2_E).round_ties_even();
        let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
        let p = 1.0
            + r * (1.0
                + r * (0.5
                    + r * (0.166_666_67
                        + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
        let bits = ((n as i32 + 127) as u32) << 23;
        p * f32::from_bits(bits)
    }
}

/// Shapes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Batch.
    pub batch: usize,
    /// Heads.
    pub heads: usize,
    /// Queries per (batch, head).
    pub queries: usize,
    /// Keys per (batch, head).
    pub keys: usize,
    /// Head dimension.
    pub head_dim: usize,
}

/// Inputs of one (batch, head).
pub struct Head<'a, T> {
    /// Queries `[Nq, D]`.
    pub q: &'a [T],
    /// Keys `[Nk, D]`.
    pub k: &'a [T],
    /// Values `[Nk, D]`.
    pub v: &'a [T],
    /// Key-padding flags `[Nk]` (non-zero = attend), or all keys.
    pub keep: Option<&'a [u8]>,
    /// Shapes.
    pub dims: Dims,
    /// Score scale, 1/√D.
    pub scale: T,
}

/// Gradients of one (batch, head): the forward's output, its gradient and the saved log-sum-exp.
pub struct HeadGrad<'a, T> {
    /// Forward output `[Nq, D]`.
    pub out: &'a [T],
    /// Gradient of the loss with respect to it.
    pub d_out: &'a [T],
    /// Per-query log-sum-exp from the forward pass.
    pub lse: &'a [T],
}

/// Where the backward pass of one (batch, head) writes: `dq [Nq, D]`, `dk, dv [Nk, D]`.
pub struct HeadGradOut<'a, T> {
    /// Gradient of the queries.
    pub dq: &'a mut [T],
    /// Gradient of the keys (zero for padding keys).
    pub dk: &'a mut [T],
    /// Gradient of the values (zero for padding keys).
    pub dv: &'a mut [T],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_accurate_over_the_shifted_range() {
        let mut worst = 0.0f64;
        for i in 0..=100_000 {
            let x = -87.0 * i as f32 / 100_000.0;
            let exact = (x as f64).exp();
            let rel = ((f32::exp_neg(x) as f64) - exact).abs() / exact;
            worst = worst.max(rel);
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(f32::exp_neg(0.0), 1.0);
        assert!(f32::exp_neg(f32::NEG_INFINITY) < 1e-37);
    }
}
