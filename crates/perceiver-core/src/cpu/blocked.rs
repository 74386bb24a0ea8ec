//! The blocked CPU attention kernels for large heads: FlashAttention-2's tiling with every
//! product done by a cache-blocked GEMM micro-kernel (the `gemm` crate, which candle's own CPU
//! matmul uses) on tiles small enough to stay in cache.
//!
//! Forward, per block of [`QUERY_BLOCK`] queries: for each block of [`KEY_BLOCK`] keys,
//! `S = scale · Q Kᵀ` (one GEMM into a per-thread tile), an online-softmax update of the running
//! row maximum `m` and sum `l` (rescaling the accumulator when `m` grows), `P = exp(S − m)` in
//! place, and `acc += P V` (one GEMM). Only `lse = m + ln l` per query is kept for backward.
//!
//! Backward, per block of keys (outer) and queries (inner), with `δ = rowsum(dO ∘ O)`:
//! `P = exp(scale · Q Kᵀ − lse)`, `dV += Pᵀ dO`, `dP = dO Vᵀ`, `dS = scale · P ∘ (dP − δ)`,
//! `dQ += dS K`, `dK += dSᵀ Q`: five GEMMs on the tile, transposes expressed as strides.
//!
//! The element-wise passes (exp, max, sum) are written so they vectorise; the caller compiles them
//! per instruction set (`cpu/mod.rs`'s dispatch). Padding keys are dropped first (compaction);
//! without a mask the inputs are used in place.

use super::head::{Head, HeadGrad, HeadGradOut, KernelFloat};

/// Queries per block.
pub const QUERY_BLOCK: usize = 64;
/// Keys per block: a `QUERY_BLOCK × KEY_BLOCK` f32 tile is 128 KiB, two of them (backward) fit
/// in a 1 MiB L2 cache. 512 measured best of 128/256/512/1024 (within noise of 1024).
pub const KEY_BLOCK: usize = 512;
/// Width of the vector accumulators in the reductions.
const LANES: usize = 16;

/// Whether a head is large enough for the blocked kernels to beat the register-tile ones (below
/// this the GEMM's fixed cost per call dominates; measured in `benches/benches/attention.rs`).
pub fn worth_blocking(queries: usize, keys: usize, head_dim: usize) -> bool {
    queries >= 16 && keys >= 128 && head_dim >= 16
}

/// A read-only matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
struct View<'a, T> {
    data: &'a [T],
    rs: usize,
    cs: usize,
}

impl<'a, T> View<'a, T> {
    fn rows(data: &'a [T], rs: usize) -> Self {
        View { data, rs, cs: 1 }
    }
    /// The transpose of a row-major matrix with row stride `rs`.
    fn transposed(data: &'a [T], rs: usize) -> Self {
        View {
            data,
            rs: 1,
            cs: rs,
        }
    }
    fn covers(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst[m × n] (row stride dst_rs) = (accumulate ? dst : 0) + beta · lhs[m × k] · rhs[k × n]`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gemm<T: KernelFloat>(
    dst: &mut [T],
    dst_rs: usize,
    accumulate: bool,
    lhs: View<'_, T>,
    rhs: View<'_, T>,
    (m, n, k): (usize, usize, usize),
    beta: T,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (m - 1) * dst_rs + n <= dst.len() && lhs.covers(m, k) && rhs.covers(k, n),
        "blocked attention: a GEMM operand is smaller than its shape"
    );
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[i * dst_rs..i * dst_rs + n].fill(T::zero());
            }
        }
        return;
    }
    // SAFETY: the assert above checked that every element the GEMM touches, `(i, j)` with
    // `i < m, j < n` (dst), `i < m, j < k` (lhs) and `i < k, j < n` (rhs), lies inside its
    // slice; `dst` is borrowed mutably and so cannot alias the inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            T::one(),
            beta,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[inline(always)]
fn slice_max<T: KernelFloat>(x: &[T]) -> T {
    let mut acc = [T::neg_infinity(); LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for i in 0..LANES {
            acc[i] = acc[i].max(chunk[i]);
        }
    }
    let m = acc.iter().copied().fold(T::neg_infinity(), T::max);
    tail.iter().copied().fold(m, T::max)
}

/// `x ← exp(x − shift)` (every `x − shift ≤ 0`), returning the sum of the results.
#[inline(always)]
fn exp_shifted_sum<T: KernelFloat>(x: &mut [T], shift: T) -> T {
    let mut acc = [T::zero(); LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for i in 0..LANES {
            chunk[i] = T::exp_neg(chunk[i] - shift);
            acc[i] += chunk[i];
        }
    }
    let mut sum: T = acc.iter().copied().sum();
    for v in chunks.into_remainder() {
        *v = T::exp_neg(*v - shift);
        sum += *v;
    }
    sum
}

/// The unmasked rows of `x [n, d]`: `x` itself when every row is kept, else a compacted copy in
/// `buf`.
fn compact<'a, T: KernelFloat>(
    x: &'a [T],
    d: usize,
    index: Option<&[usize]>,
    buf: &'a mut Vec<T>,
) -> &'a [T] {
    match index {
        None => x,
        Some(index) => {
            buf.clear();
            for &j in index {
                buf.extend_from_slice(&x[j * d..(j + 1) * d]);
            }
            buf
        }
    }
}

/// Buffers one worker thread reuses across heads.
pub(crate) struct Scratch<T> {
    index: Vec<usize>,
    k: Vec<T>,
    v: Vec<T>,
    s: Vec<T>,
    dp: Vec<T>,
    acc: Vec<T>,
    dk: Vec<T>,
    dv: Vec<T>,
}

impl<T> Default for Scratch<T> {
    fn default() -> Self {
        Scratch {
            index: Vec::new(),
            k: Vec::new(),
            v: Vec::new(),
            s: Vec::new(),
            dp: Vec::new(),
            acc: Vec::new(),
            dk: Vec::new(),
            dv: Vec::new(),
        }
    }
}

/// Fills `scratch.index` with the kept keys; `None` when all are kept (no compaction needed).
fn kept_keys(keep: Option<&[u8]>, n: usize, index: &mut Vec<usize>) -> Option<usize> {
    index.clear();
    match keep {
        Some(keep) if keep.contains(&0) => {
            index.extend((0..n).filter(|&j| keep[j] != 0));
            Some(index.len())
        }
        _ => None,
    }
}

/// Forward for one (batch, head); see the module documentation.
#[inline(always)]
pub fn forward<T: KernelFloat>(
    h: &Head<'_, T>,
    scratch: &mut Scratch<T>,
    out: &mut [T],
    lse: &mut [T],
) {
    let (nq, nk, d) = (h.dims.queries, h.dims.keys, h.dims.head_dim);
    let Scratch {
        index,
        k: kbuf,
        v: vbuf,
        s,
        acc,
        ..
    } = scratch;
    let compacted = kept_keys(h.keep, nk, index);
    let na = compacted.unwrap_or(nk);
    if na == 0 {
        out.fill(T::zero());
        lse.fill(T::zero());
        return;
    }
    let index = compacted.map(|_| index.as_slice());
    let k = compact(h.k, d, index, kbuf);
    let v = compact(h.v, d, index, vbuf);
    s.resize(QUERY_BLOCK * KEY_BLOCK, T::zero());
    acc.resize(QUERY_BLOCK * d, T::zero());
    let mut m = [T::zero(); QUERY_BLOCK];
    let mut l = [T::zero(); QUERY_BLOCK];
    for i0 in (0..nq).step_by(QUERY_BLOCK) {
        let rows = QUERY_BLOCK.min(nq - i0);
        let q = &h.q[i0 * d..(i0 + rows) * d];
        m[..rows].fill(T::neg_infinity());
        l[..rows].fill(T::zero());
        acc[..rows * d].fill(T::zero());
        for j0 in (0..na).step_by(KEY_BLOCK) {
            let cols = KEY_BLOCK.min(na - j0);
            let kb = &k[j0 * d..(j0 + cols) * d];
            gemm(
                s,
                KEY_BLOCK,
                false,
                View::rows(q, d),
                View::transposed(kb, d),
                (rows, cols, d),
                h.scale,
            );
            for r in 0..rows {
                let row = &mut s[r * KEY_BLOCK..r * KEY_BLOCK + cols];
                let block_max = slice_max(row);
                if block_max > m[r] {
                    let correction = T::exp_neg(m[r] - block_max);
                    l[r] *= correction;
                    for a in acc[r * d..(r + 1) * d].iter_mut() {
                        *a *= correction;
                    }
                    m[r] = block_max;
                }
                l[r] += exp_shifted_sum(row, m[r]);
            }
            gemm(
                acc,
                d,
                true,
                View::rows(s, KEY_BLOCK),
                View::rows(&v[j0 * d..(j0 + cols) * d], d),
                (rows, d, cols),
                T::one(),
            );
        }
        for r in 0..rows {
            let inv = T::one() / l[r];
            for (o, &a) in out[(i0 + r) * d..(i0 + r + 1) * d]
                .iter_mut()
                .zip(&acc[r * d..(r + 1) * d])
            {
                *o = a * inv;
            }
            lse[i0 + r] = m[r] + l[r].ln();
        }
    }
}

/// Backward for one (batch, head); see the module documentation.
#[inline(always)]
pub fn backward<T: KernelFloat>(
    h: &Head<'_, T>,
    g: &HeadGrad<'_, T>,
    scratch: &mut Scratch<T>,
    grads: HeadGradOut<'_, T>,
) {
    let HeadGradOut { dq, dk, dv } = grads;
    let (nq, nk, d) = (h.dims.queries, h.dims.keys, h.dims.head_dim);
    dq.fill(T::zero());
    dk.fill(T::zero());
    dv.fill(T::zero());
    let Scratch {
        index,
        k: kbuf,
        v: vbuf,
        s,
        dp,
        acc: delta,
        dk: dkbuf,
        dv: dvbuf,
    } = scratch;
    let compacted = kept_keys(h.keep, nk, index);
    let na = compacted.unwrap_or(nk);
    if na == 0 {
        return;
    }
    let index = compacted.map(|_| index.as_slice());
    let k = compact(h.k, d, index, kbuf);
    let v = compact(h.v, d, index, vbuf);
    let (dkc, dvc): (&mut [T], &mut [T]) = match index {
        None => (&mut *dk, &mut *dv),
        Some(_) => {
            dkbuf.clear();
            dkbuf.resize(na * d, T::zero());
            dvbuf.clear();
            dvbuf.resize(na * d, T::zero());
            (dkbuf, dvbuf)
        }
    };
    s.resize(QUERY_BLOCK * KEY_BLOCK, T::zero());
    dp.resize(QUERY_BLOCK * KEY_BLOCK, T::zero());
    delta.clear();
    delta.extend((0..nq).map(|i| {
        let (o, g) = (&g.out[i * d..(i + 1) * d], &g.d_out[i * d..(i + 1) * d]);
        o.iter().zip(g).map(|(&a, &b)| a * b).sum::<T>()
    }));
    for j0 in (0..na).step_by(KEY_BLOCK) {
        let cols = KEY_BLOCK.min(na - j0);
        let (kb, vb) = (&k[j0 * d..(j0 + cols) * d], &v[j0 * d..(j0 + cols) * d]);
        for i0 in (0..nq).step_by(QUERY_BLOCK) {
            let rows = QUERY_BLOCK.min(nq - i0);
            let q = &h.q[i0 * d..(i0 + rows) * d];
            let d_out = &g.d_out[i0 * d..(i0 + rows) * d];
            gemm(
                s,
                KEY_BLOCK,
                false,
                View::rows(q, d),
                View::transposed(kb, d),
                (rows, cols, d),
                h.scale,
            );
            for r in 0..rows {
                let shift = g.lse[i0 + r];
                for x in s[r * KEY_BLOCK..r * KEY_BLOCK + cols].iter_mut() {
                    *x = T::exp_neg((*x - shift).min(T::zero()));
                }
            }
            // dV += Pᵀ dO
            gemm(
                &mut dvc[j0 * d..(j0 + cols) * d],
                d,
                true,
                View::transposed(s, KEY_BLOCK),
                View::rows(d_out, d),
                (cols, d, rows),
                T::one(),
            );
            // dP = dO Vᵀ
            gemm(
                dp,
                KEY_BLOCK,
                false,
                View::rows(d_out, d),
                View::transposed(vb, d),
                (rows, cols, d),
                T::one(),
            );
            // dS = scale · P ∘ (dP − δ), into dp.
            for r in 0..rows {
                let dl = delta[i0 + r];
                let (p, ds) = (
                    &s[r * KEY_BLOCK..r * KEY_BLOCK + cols],
                    &mut dp[r * KEY_BLOCK..r * KEY_BLOCK + cols],
                );
                for (x, &p) in ds.iter_mut().zip(p) {
                    *x = p * (*x - dl) * h.scale;
                }
            }
            // dQ += dS K
            gemm(
                &mut dq[i0 * d..(i0 + rows) * d],
                d,
                true,
                View::rows(dp, KEY_BLOCK),
                View::rows(kb, d),
                (rows, d, cols),
                T::one(),
            );
            // dK += dSᵀ Q
            gemm(
                &mut dkc[j0 * d..(j0 + cols) * d],
                d,
                true,
                View::transposed(dp, KEY_BLOCK),
                View::rows(q, d),
                (cols, d, rows),
                T::one(),
            );
        }
    }
    if let Some(index) = index {
        for (jj, &j) in index.iter().enumerate() {
            dk[j * d..(j + 1) * d].copy_from_slice(&dkbuf[jj * d..(jj + 1) * d]);
            dv[j * d..(j + 1) * d].copy_from_slice(&dvbuf[jj * d..(jj + 1) * d]);
        }
    }
}
