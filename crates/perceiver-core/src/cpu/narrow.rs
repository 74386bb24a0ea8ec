//! AVX-512 kernels for f32 heads exactly 16 floats wide — every head of the default model —
//! forward and backward, for one (batch, head).
//!
//! The register-tile kernels of `super::direct` put keys in the vector lanes: each query's
//! softmax then needs horizontal reductions, and every head pays for compacting and transposing
//! its keys and values into scratch buffers. Here a block of up to 16 **queries** fills the
//! lanes instead, and a head row (16 floats) is one vector:
//!
//! - the block's queries are transposed once, `Qᵀ[d]` = a vector of the queries' `d`-th
//!   elements, so key `j`'s scores for every query of the block are
//!   `s_j = Σ_d Qᵀ[d] · k_j[d]`, sixteen multiply-adds with `k_j[d]` broadcast from memory;
//! - the softmax's maximum and sum over keys are then vertical: one instruction per key, no
//!   horizontal reduction;
//! - outputs are rows: `o_i = Σ_j p_ij · v_j` with `p_ij` broadcast from a small stack array,
//!   so nothing is transposed back;
//! - keys and values are read in place (padding keys are skipped by index, never copied).
//!
//! Forward: an online softmax over blocks of 16 unmasked keys (running maximum `m` and sum `l`
//! per query), keeping `lse = m + ln l`. Backward (FlashAttention-2's recurrence, as the other
//! kernels): `P = exp(S − lse)`, `dP = dO Vᵀ` (the transposed `dO` block times broadcast `v_j`),
//! `dS = scale · P ∘ (dP − δ)` with `δ = rowsum(dO ∘ O)`, then per key `dK_j = Σ_i dS_ij q_i`,
//! `dV_j = Σ_i P_ij dO_i` and per query `dQ_i += dS_ij k_j`. Every output element is written
//! exactly once per query block (padding keys' rows get zeros), so the caller's buffers need no
//! zero-fill.
//!
//! Compiled only for AVX-512F; `super` (`cpu/mod.rs`) checks the CPU and sends every other head
//! and instruction set to `direct` or `blocked`.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

use super::head::{Head, HeadGrad, HeadGradOut};

/// Head width, queries per block and keys per block: one AVX-512 vector of f32.
pub const W: usize = 16;

/// Whether a head is one these kernels take: width exactly [`W`].
pub fn applies(head_dim: usize) -> bool {
    head_dim == W
}

/// A head row as a vector.
#[inline]
#[target_feature(enable = "avx512f")]
fn load(x: &[f32; W]) -> __m512 {
    // SAFETY: `x` is 16 readable floats; the load has no alignment requirement.
    unsafe { _mm512_loadu_ps(x.as_ptr()) }
}

/// Writes a vector to a head row.
#[inline]
#[target_feature(enable = "avx512f")]
fn store(x: &mut [f32; W], v: __m512) {
    // SAFETY: `x` is 16 writable floats; the store has no alignment requirement.
    unsafe { _mm512_storeu_ps(x.as_mut_ptr(), v) }
}

/// Writes a vector to a head row of an output that may not be initialised yet.
#[inline]
#[target_feature(enable = "avx512f")]
fn write(x: &mut [MaybeUninit<f32>; W], v: __m512) {
    // SAFETY: `x` is 16 writable floats (`MaybeUninit<f32>` has f32's layout); the store has no
    // alignment requirement and initialises all of them.
    unsafe { _mm512_storeu_ps(x.as_mut_ptr().cast(), v) }
}

/// Reads back a head row of an output that [`write`] has written.
///
/// # Safety
/// Every element of `x` is initialised.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn read_written(x: &[MaybeUninit<f32>; W]) -> __m512 {
    // SAFETY: 16 readable floats, initialised (the caller's guarantee).
    unsafe { _mm512_loadu_ps(x.as_ptr().cast()) }
}

/// `exp(x)` lane-wise for `x ≤ 0`: the same range reduction and polynomial as
/// `KernelFloat::exp_neg` for f32, with `2ⁿ` applied by `vscalefps`.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp_neg(x: __m512) -> __m512 {
    let x = _mm512_max_ps(x, _mm512_set1_ps(-87.0));
    // Round to nearest even, exceptions suppressed.
    let n =
        _mm512_roundscale_ps::<0x08>(_mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)));
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_145_75), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428_606_8e-6), r);
    let mut p = _mm512_set1_ps(0.001_388_889);
    for c in [0.008_333_334, 0.041_666_668, 0.166_666_67, 0.5, 1.0, 1.0] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    _mm512_scalef_ps(p, n)
}

/// Up to [`W`] rows transposed into vectors, times `scale`: lane `i` of vector `d` is
/// `scale · rows[i][d]`; lanes past the rows are zero.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose(rows: &[[f32; W]], scale: f32) -> [__m512; W] {
    let mut t = [[0f32; W]; W];
    for (i, row) in rows.iter().enumerate() {
        for (d, &x) in row.iter().enumerate() {
            t[d][i] = x;
        }
    }
    let scale = _mm512_set1_ps(scale);
    let mut out = [_mm512_setzero_ps(); W];
    for (o, row) in out.iter_mut().zip(&t) {
        *o = _mm512_mul_ps(load(row), scale);
    }
    out
}

/// `Σ_d xt[d] · row[d]`: a row's dot product with every lane's vector at once, in four
/// independent chains (a single chain would wait on each multiply-add's latency).
#[inline]
#[target_feature(enable = "avx512f")]
fn dot_lanes(xt: &[__m512; W], row: &[f32; W]) -> __m512 {
    let mut acc = [_mm512_setzero_ps(); 4];
    for (d, (&x, &r)) in xt.iter().zip(row).enumerate() {
        acc[d % 4] = _mm512_fmadd_ps(x, _mm512_set1_ps(r), acc[d % 4]);
    }
    _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]))
}

/// The unmasked keys' indices, into `keys`.
fn active_keys(keep: Option<&[u8]>, n: usize, keys: &mut Vec<usize>) {
    keys.clear();
    keys.extend((0..n).filter(|&j| keep.is_none_or(|m| m[j] != 0)));
}

/// A slice of head rows as rows of [`W`]; its length is a multiple of [`W`] for a head of that
/// width (the remainder, always empty, is dropped).
fn rows(x: &[f32]) -> &[[f32; W]] {
    x.as_chunks::<W>().0
}

fn rows_mut(x: &mut [MaybeUninit<f32>]) -> &mut [[MaybeUninit<f32>; W]] {
    x.as_chunks_mut::<W>().0
}

/// Forward for one (batch, head) of width [`W`]: writes every element of `out [Nq, W]` and
/// `lse [Nq]`; a query with no unmasked key gets zeros. `keys` is scratch.
#[target_feature(enable = "avx512f")]
pub fn forward(
    h: &Head<'_, f32>,
    keys: &mut Vec<usize>,
    out: &mut [MaybeUninit<f32>],
    lse: &mut [MaybeUninit<f32>],
) {
    debug_assert!(applies(h.dims.head_dim));
    let nq = h.dims.queries;
    active_keys(h.keep, h.dims.keys, keys);
    if keys.is_empty() {
        out.fill(MaybeUninit::new(0.0));
        lse.fill(MaybeUninit::new(0.0));
        return;
    }
    let (q, k, v) = (rows(h.q), rows(h.k), rows(h.v));
    let out = rows_mut(out);
    for i0 in (0..nq).step_by(W) {
        let n = W.min(nq - i0);
        let qt = transpose(&q[i0..i0 + n], h.scale);
        let mut m = _mm512_set1_ps(f32::NEG_INFINITY);
        let mut l = _mm512_setzero_ps();
        let mut acc = [_mm512_setzero_ps(); W];
        for block in keys.chunks(W) {
            let mut s = [_mm512_setzero_ps(); W];
            for (sj, &j) in s.iter_mut().zip(block) {
                *sj = dot_lanes(&qt, &k[j]);
            }
            let mut block_max = s[0];
            for &sj in &s[1..block.len()] {
                block_max = _mm512_max_ps(block_max, sj);
            }
            let m_new = _mm512_max_ps(m, block_max);
            let correction = exp_neg(_mm512_sub_ps(m, m_new));
            m = m_new;
            // p[jj][i]: key jj's probability weight for query i, for broadcasting.
            let mut p = [[0f32; W]; W];
            let mut sum = _mm512_setzero_ps();
            for (pj, &sj) in p.iter_mut().zip(&s[..block.len()]) {
                let e = exp_neg(_mm512_sub_ps(sj, m));
                sum = _mm512_add_ps(sum, e);
                store(pj, e);
            }
            l = _mm512_fmadd_ps(l, correction, sum);
            let mut c = [0f32; W];
            store(&mut c, correction);
            for (i, a) in acc.iter_mut().enumerate().take(n) {
                // Two chains, over even and odd keys.
                let mut x = [_mm512_mul_ps(*a, _mm512_set1_ps(c[i])), _mm512_setzero_ps()];
                let mut pairs = p.chunks_exact(2).zip(block.chunks_exact(2));
                for (pj, j) in &mut pairs {
                    x[0] = _mm512_fmadd_ps(_mm512_set1_ps(pj[0][i]), load(&v[j[0]]), x[0]);
                    x[1] = _mm512_fmadd_ps(_mm512_set1_ps(pj[1][i]), load(&v[j[1]]), x[1]);
                }
                if block.len() % 2 == 1 {
                    let last = block.len() - 1;
                    x[0] = _mm512_fmadd_ps(_mm512_set1_ps(p[last][i]), load(&v[block[last]]), x[0]);
                }
                *a = _mm512_add_ps(x[0], x[1]);
            }
        }
        let (mut ms, mut ls) = ([0f32; W], [0f32; W]);
        store(&mut ms, m);
        store(&mut ls, l);
        for i in 0..n {
            write(
                &mut out[i0 + i],
                _mm512_mul_ps(acc[i], _mm512_set1_ps(1.0 / ls[i])),
            );
            lse[i0 + i] = MaybeUninit::new(ms[i] + ls[i].ln());
        }
    }
}

/// Backward for one (batch, head) of width [`W`]: writes every element of `grads` (zeros for
/// padding keys). `keys` is scratch.
#[target_feature(enable = "avx512f")]
pub fn backward(
    h: &Head<'_, f32>,
    g: &HeadGrad<'_, f32>,
    keys: &mut Vec<usize>,
    grads: HeadGradOut<'_, MaybeUninit<f32>>,
) {
    debug_assert!(applies(h.dims.head_dim));
    let HeadGradOut { dq, dk, dv } = grads;
    let (nq, nk) = (h.dims.queries, h.dims.keys);
    active_keys(h.keep, nk, keys);
    let (dq, dk, dv) = (rows_mut(dq), rows_mut(dk), rows_mut(dv));
    let zero = _mm512_setzero_ps();
    if keys.len() < nk || nq == 0 {
        // Padding keys (or, without queries, every key) have no gradient.
        for (j, (dkj, dvj)) in dk.iter_mut().zip(dv.iter_mut()).enumerate() {
            if nq == 0 || h.keep.is_some_and(|m| m[j] == 0) {
                write(dkj, zero);
                write(dvj, zero);
            }
        }
    }
    if keys.is_empty() {
        for row in dq.iter_mut() {
            write(row, zero);
        }
        return;
    }
    let (q, k, v) = (rows(h.q), rows(h.k), rows(h.v));
    let (o, d_out) = (rows(g.out), rows(g.d_out));
    let scale = _mm512_set1_ps(h.scale);
    for i0 in (0..nq).step_by(W) {
        let n = W.min(nq - i0);
        let (qb, ob, dob) = (&q[i0..i0 + n], &o[i0..i0 + n], &d_out[i0..i0 + n]);
        let qt = transpose(qb, h.scale);
        let dot = transpose(dob, 1.0);
        let (mut lse, mut delta) = ([0f32; W], [0f32; W]);
        lse[..n].copy_from_slice(&g.lse[i0..i0 + n]);
        for (dl, (oi, doi)) in delta.iter_mut().zip(ob.iter().zip(dob)) {
            *dl = _mm512_reduce_add_ps(_mm512_mul_ps(load(oi), load(doi)));
        }
        let (lse, delta) = (load(&lse), load(&delta));
        let mut dq_acc = [zero; W];
        for &j in keys.iter() {
            let p = exp_neg(_mm512_sub_ps(dot_lanes(&qt, &k[j]), lse));
            let dp = dot_lanes(&dot, &v[j]);
            let ds = _mm512_mul_ps(_mm512_mul_ps(p, _mm512_sub_ps(dp, delta)), scale);
            let (mut pa, mut dsa) = ([0f32; W], [0f32; W]);
            store(&mut pa, p);
            store(&mut dsa, ds);
            let kj = load(&k[j]);
            // Two chains each, over even and odd queries, in named variables: an array indexed
            // by `i % 2` lives in memory, and its stores and reloads were a quarter of the time.
            let (mut dk0, mut dk1, mut dv0, mut dv1) = (zero, zero, zero, zero);
            let mut i = 0;
            while i + 1 < n {
                let (ds0, ds1) = (_mm512_set1_ps(dsa[i]), _mm512_set1_ps(dsa[i + 1]));
                dk0 = _mm512_fmadd_ps(ds0, load(&qb[i]), dk0);
                dk1 = _mm512_fmadd_ps(ds1, load(&qb[i + 1]), dk1);
                dv0 = _mm512_fmadd_ps(_mm512_set1_ps(pa[i]), load(&dob[i]), dv0);
                dv1 = _mm512_fmadd_ps(_mm512_set1_ps(pa[i + 1]), load(&dob[i + 1]), dv1);
                dq_acc[i] = _mm512_fmadd_ps(ds0, kj, dq_acc[i]);
                dq_acc[i + 1] = _mm512_fmadd_ps(ds1, kj, dq_acc[i + 1]);
                i += 2;
            }
            if i < n {
                let ds0 = _mm512_set1_ps(dsa[i]);
                dk0 = _mm512_fmadd_ps(ds0, load(&qb[i]), dk0);
                dv0 = _mm512_fmadd_ps(_mm512_set1_ps(pa[i]), load(&dob[i]), dv0);
                dq_acc[i] = _mm512_fmadd_ps(ds0, kj, dq_acc[i]);
            }
            let (mut dkj, mut dvj) = (_mm512_add_ps(dk0, dk1), _mm512_add_ps(dv0, dv1));
            if i0 > 0 {
                // SAFETY: the first block of queries wrote every unmasked key's rows.
                unsafe {
                    dkj = _mm512_add_ps(dkj, read_written(&dk[j]));
                    dvj = _mm512_add_ps(dvj, read_written(&dv[j]));
                }
            }
            write(&mut dk[j], dkj);
            write(&mut dv[j], dvj);
        }
        for (row, &acc) in dq[i0..i0 + n].iter_mut().zip(&dq_acc) {
            write(row, acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::KernelFloat;

    #[test]
    fn vector_exp_matches_the_scalar_one() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        let xs: Vec<f32> = (0..=1600).map(|i| -87.0 * i as f32 / 1600.0).collect();
        for chunk in rows(&xs) {
            let mut got = [0f32; W];
            // SAFETY: the CPU has AVX-512F (checked above).
            unsafe { store(&mut got, exp_neg(load(chunk))) };
            for (&x, &y) in chunk.iter().zip(&got) {
                let want = f32::exp_neg(x);
                assert!((y - want).abs() <= 1e-6 * want, "exp({x}): {y} vs {want}");
            }
        }
    }

    #[test]
    fn transpose_puts_rows_in_lanes() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        let x: Vec<f32> = (0..5 * W).map(|i| i as f32).collect();
        let mut t = [[0f32; W]; W];
        // SAFETY: the CPU has AVX-512F (checked above).
        unsafe {
            for (row, v) in t.iter_mut().zip(transpose(rows(&x), 2.0)) {
                store(row, v);
            }
        }
        for (d, lanes) in t.iter().enumerate() {
            for (i, &y) in lanes.iter().enumerate() {
                let want = if i < 5 { 2.0 * (i * W + d) as f32 } else { 0.0 };
                assert_eq!(y, want, "lane {i} of vector {d}");
            }
        }
    }
}
