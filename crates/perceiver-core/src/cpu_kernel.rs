//! The fused CPU attention kernels, forward and backward, for one (batch, head) at a time.
//!
//! Forward: one pass over key blocks per query with an online softmax (running max `m` and sum
//! `l`), so the `Nq × Nk` probability matrix is never stored; each query row keeps only its
//! log-sum-exp `m + ln l` for the backward pass. Backward recomputes the probabilities from it
//! (FlashAttention-2's recurrence): `P = exp(S − lse)`, `dV += Pᵀ dO`, `dP = dO Vᵀ`,
//! `dS = P ∘ (dP − rowsum(dO ∘ O))`, `dQ = scale · dS K`, `dK = scale · dSᵀ Q`.
//!
//! Inner loops run over contiguous slices with no branches, so they vectorise: keys are first
//! compacted (padding dropped) and transposed to `[D, Nk]`, which turns each score row into `D`
//! AXPYs over a block of keys.

use num_traits::Float;

/// Keys per block: the score row of one block stays in L1 with its `D × BLOCK` slice of Kᵀ.
const BLOCK: usize = 128;

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
    /// relative error below 2e-7, no branches, so the loops around it vectorise.
    #[inline(always)]
    fn exp_neg(x: f32) -> f32 {
        let x = x.max(-87.0);
        let n = (x * std::f32::consts::LOG2_E).round();
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

/// Unmasked keys of one (batch, head), compacted: rows `[n, D]`, transposed `[D, n]`, original indices.
struct Compact<T> {
    rows: Vec<T>,
    transposed: Vec<T>,
    index: Vec<usize>,
}

fn compact<T: KernelFloat>(k: &[T], keep: Option<&[u8]>, n: usize, d: usize) -> Compact<T> {
    let index: Vec<usize> = (0..n).filter(|&j| keep.is_none_or(|m| m[j] != 0)).collect();
    let na = index.len();
    let mut rows = Vec::with_capacity(na * d);
    for &j in &index {
        rows.extend_from_slice(&k[j * d..(j + 1) * d]);
    }
    let mut transposed = vec![T::zero(); d * na];
    for (jj, row) in rows.chunks_exact(d.max(1)).enumerate() {
        for (kk, &x) in row.iter().enumerate() {
            transposed[kk * na + jj] = x;
        }
    }
    Compact {
        rows,
        transposed,
        index,
    }
}

/// `s[j] = scale · Σ_k q[k] · kt[k, j]` for `j` in `start..start + s.len()`.
#[inline(always)]
fn scores<T: KernelFloat>(q: &[T], kt: &[T], na: usize, start: usize, scale: T, s: &mut [T]) {
    s.fill(T::zero());
    for (kk, &qk) in q.iter().enumerate() {
        let row = &kt[kk * na + start..kk * na + start + s.len()];
        let qk = qk * scale;
        for (sj, &kj) in s.iter_mut().zip(row) {
            *sj += qk * kj;
        }
    }
}

#[inline(always)]
fn axpy<T: KernelFloat>(a: T, x: &[T], y: &mut [T]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// Forward for one (batch, head): writes `out [Nq, D]` and `lse [Nq]`.
/// A query with no unmasked key gets a zero output (and lse 0, unused by backward).
#[allow(clippy::too_many_arguments)] // the kernel's inputs, named as in the maths
pub fn forward_one<T: KernelFloat>(
    q: &[T],
    k: &[T],
    v: &[T],
    keep: Option<&[u8]>,
    dims: Dims,
    scale: T,
    out: &mut [T],
    lse: &mut [T],
) {
    let (nq, d) = (dims.queries, dims.head_dim);
    let kc = compact(k, keep, dims.keys, d);
    let na = kc.index.len();
    if na == 0 {
        out.fill(T::zero());
        lse.fill(T::zero());
        return;
    }
    let mut vc = Vec::with_capacity(na * d);
    for &j in &kc.index {
        vc.extend_from_slice(&v[j * d..(j + 1) * d]);
    }
    let mut s = [T::zero(); BLOCK];
    let mut acc = vec![T::zero(); d];
    for i in 0..nq {
        let qi = &q[i * d..(i + 1) * d];
        let mut m = T::neg_infinity();
        let mut l = T::zero();
        acc.fill(T::zero());
        let mut start = 0;
        while start < na {
            let len = BLOCK.min(na - start);
            let s = &mut s[..len];
            scores(qi, &kc.transposed, na, start, scale, s);
            let block_max = s.iter().copied().fold(T::neg_infinity(), T::max);
            if block_max > m {
                let correction = T::exp_neg(m - block_max);
                l *= correction;
                for a in acc.iter_mut() {
                    *a *= correction;
                }
                m = block_max;
            }
            for sj in s.iter_mut() {
                *sj = T::exp_neg(*sj - m);
            }
            l += s.iter().copied().sum::<T>();
            for (jj, &p) in s.iter().enumerate() {
                let j = start + jj;
                axpy(p, &vc[j * d..(j + 1) * d], &mut acc);
            }
            start += len;
        }
        let inv = T::one() / l;
        for (o, &a) in out[i * d..(i + 1) * d].iter_mut().zip(&acc) {
            *o = a * inv;
        }
        lse[i] = m + l.ln();
    }
}

/// Backward for one (batch, head): accumulates `dq [Nq, D]`, writes `dk, dv [Nk, D]`.
#[allow(clippy::too_many_arguments)]
pub fn backward_one<T: KernelFloat>(
    q: &[T],
    k: &[T],
    v: &[T],
    out: &[T],
    d_out: &[T],
    lse: &[T],
    keep: Option<&[u8]>,
    dims: Dims,
    scale: T,
    dq: &mut [T],
    dk: &mut [T],
    dv: &mut [T],
) {
    let (nq, d) = (dims.queries, dims.head_dim);
    dq.fill(T::zero());
    dk.fill(T::zero());
    dv.fill(T::zero());
    let kc = compact(k, keep, dims.keys, d);
    let vc = compact(v, keep, dims.keys, d);
    let na = kc.index.len();
    if na == 0 {
        return;
    }
    let mut dkc = vec![T::zero(); na * d];
    let mut dvc = vec![T::zero(); na * d];
    let mut p = [T::zero(); BLOCK];
    let mut dp = [T::zero(); BLOCK];
    for i in 0..nq {
        let qi = &q[i * d..(i + 1) * d];
        let doi = &d_out[i * d..(i + 1) * d];
        // D_i = rowsum(dO ∘ O): the softmax Jacobian's correction term.
        let delta: T = doi
            .iter()
            .zip(&out[i * d..(i + 1) * d])
            .map(|(&a, &b)| a * b)
            .sum();
        let dqi = &mut dq[i * d..(i + 1) * d];
        let mut start = 0;
        while start < na {
            let len = BLOCK.min(na - start);
            let (p, dp) = (&mut p[..len], &mut dp[..len]);
            scores(qi, &kc.transposed, na, start, scale, p);
            for pj in p.iter_mut() {
                *pj = T::exp_neg(*pj - lse[i]);
            }
            scores(doi, &vc.transposed, na, start, T::one(), dp);
            for (jj, (&pj, &dpj)) in p.iter().zip(dp.iter()).enumerate() {
                let j = start + jj;
                let ds = pj * (dpj - delta) * scale;
                axpy(ds, &kc.rows[j * d..(j + 1) * d], dqi);
                axpy(ds, qi, &mut dkc[j * d..(j + 1) * d]);
                axpy(pj, doi, &mut dvc[j * d..(j + 1) * d]);
            }
            start += len;
        }
    }
    for (jj, &j) in kc.index.iter().enumerate() {
        dk[j * d..(j + 1) * d].copy_from_slice(&dkc[jj * d..(jj + 1) * d]);
        dv[j * d..(j + 1) * d].copy_from_slice(&dvc[jj * d..(jj + 1) * d]);
    }
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
