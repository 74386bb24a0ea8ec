//! The register-tile CPU attention kernels, forward and backward, for one small (batch, head).
//!
//! Forward: one pass over key blocks with an online softmax (running max `m` and sum `l` per
//! query), so the `Nq × Nk` probability matrix is never stored; each query keeps only its
//! log-sum-exp `m + ln l` for the backward pass. Backward recomputes the probabilities from it
//! (FlashAttention-2's recurrence): `P = exp(S − lse)`, `dV += Pᵀ dO`, `dP = dO Vᵀ`,
//! `dS = P ∘ (dP − rowsum(dO ∘ O))`, `dQ = scale · dS K`, `dK = scale · dSᵀ Q`.
//!
//! Layout for speed: padding keys are dropped first (compaction), keys are transposed to
//! `[D, Nk]` and padded to a multiple of the tile width ([`COLS`], or [`SHORT`] for heads of few
//! keys), and queries are processed [`ROWS`] at a time, so the score tile `ROWS × COLS` is a
//! register-blocked outer-product micro-kernel (every loaded
//! key value feeds `ROWS` multiply-adds). The same generic code is compiled three times — for
//! AVX-512, AVX2+FMA and the baseline — and picked at run time, so one binary is fast on any x86-64.
//!
//! Heads with many queries and keys go to the blocked GEMM kernels of `super::blocked` instead;
//! the choice and the instruction-set dispatch are `super`'s (`cpu/mod.rs`).

use super::head::{Head, HeadGrad, HeadGradOut, KernelFloat};

/// Query rows per tile.
const ROWS: usize = 4;
/// Keys per register tile (two AVX-512 or four AVX2 vectors of f32); heads of at most
/// [`SHORT`] keys use tiles of [`SHORT`], which would otherwise compute half a tile of padding.
const COLS: usize = 32;
/// The narrower tile, for heads with few keys.
const SHORT: usize = 16;
/// Width of one chunk of a head-dimension row; rows are padded to a multiple of it.
const LANES: usize = 16;

/// Unmasked keys (or values), compacted: rows `[n, stride]` (`stride` = D padded to a multiple
/// of [`LANES`]), and, when asked for, transposed `[D, n_pad]` with `n_pad` a multiple of the tile width
/// (zero columns past `n`).
struct Compact<T> {
    rows: Vec<T>,
    stride: usize,
    transposed: Vec<T>,
    index: Vec<usize>,
    padded: usize,
}

impl<T: KernelFloat> Compact<T> {
    /// Refills the buffers (reusing their memory) from `x [n, d]`.
    fn fill(
        &mut self,
        x: &[T],
        keep: Option<&[u8]>,
        n: usize,
        d: usize,
        transpose: bool,
        cols: usize,
    ) {
        self.index.clear();
        self.index
            .extend((0..n).filter(|&j| keep.is_none_or(|m| m[j] != 0)));
        let na = self.index.len();
        self.padded = na.div_ceil(cols) * cols;
        self.stride = d.div_ceil(LANES) * LANES;
        let stride = self.stride;
        self.rows.clear();
        self.rows.resize(na * stride, T::zero());
        for (jj, &j) in self.index.iter().enumerate() {
            self.rows[jj * stride..jj * stride + d].copy_from_slice(&x[j * d..(j + 1) * d]);
        }
        self.transposed.clear();
        if transpose {
            self.transposed.resize(d * self.padded, T::zero());
            // Sequential writes, strided reads: the cheap direction for a transpose.
            for kk in 0..d {
                let padded = self.padded;
                for (jj, out) in self.transposed[kk * padded..kk * padded + na]
                    .iter_mut()
                    .enumerate()
                {
                    *out = self.rows[jj * stride + kk];
                }
            }
        }
    }
}

/// Buffers one worker thread reuses across (batch, head) pairs, so small heads cost no allocation.
pub(super) struct Scratch<T> {
    k: Compact<T>,
    v: Compact<T>,
    dk: Vec<T>,
    dv: Vec<T>,
}

impl<T> Default for Scratch<T> {
    fn default() -> Self {
        let empty = || Compact {
            rows: Vec::new(),
            stride: 0,
            transposed: Vec::new(),
            index: Vec::new(),
            padded: 0,
        };
        Scratch {
            k: empty(),
            v: empty(),
            dk: Vec::new(),
            dv: Vec::new(),
        }
    }
}

/// Maximum of a score row: lane-wise over [`LANES`]-wide chunks, then a pairwise tree over the
/// lanes (a sequential fold over them would be a chain of fifteen dependent scalar steps).
#[inline(always)]
fn row_max<T: KernelFloat, const C: usize>(s: &[T; C]) -> T {
    let mut m = [T::neg_infinity(); LANES];
    for chunk in s.chunks_exact(LANES) {
        for i in 0..LANES {
            m[i] = m[i].max(chunk[i]);
        }
    }
    tree(m, T::max)
}

/// Sum of a score row, likewise.
#[inline(always)]
fn row_sum<T: KernelFloat, const C: usize>(s: &[T; C]) -> T {
    let mut m = [T::zero(); LANES];
    for chunk in s.chunks_exact(LANES) {
        for i in 0..LANES {
            m[i] += chunk[i];
        }
    }
    tree(m, |a, b| a + b)
}

/// Reduces [`LANES`] values pairwise: halves folded onto each other, four times.
#[inline(always)]
fn tree<T: KernelFloat>(mut m: [T; LANES], f: impl Fn(T, T) -> T) -> T {
    let mut half = LANES / 2;
    while half > 0 {
        for i in 0..half {
            m[i] = f(m[i], m[i + half]);
        }
        half /= 2;
    }
    m[0]
}

/// `acc[r][..stride] += Σ_{c < valid} w[r][c] · rows[start + c][..stride]`, a register-blocked
/// `ROWS × LANES` outer-product update per chunk of the row.
#[inline(always)]
fn accumulate<T: KernelFloat, const FMA: bool, const DP: usize, const C: usize>(
    acc: &mut [[T; DP]; ROWS],
    w: &[[T; C]; ROWS],
    rows: &[T],
    stride: usize,
    start: usize,
    valid: usize,
) {
    for c0 in (0..stride).step_by(LANES) {
        let mut t = [[T::zero(); LANES]; ROWS];
        for r in 0..ROWS {
            t[r].copy_from_slice(&acc[r][c0..c0 + LANES]);
        }
        for c in 0..valid {
            let v = &rows[(start + c) * stride + c0..][..LANES];
            for r in 0..ROWS {
                let x = w[r][c];
                for i in 0..LANES {
                    t[r][i] = madd::<T, FMA>(x, v[i], t[r][i]);
                }
            }
        }
        for r in 0..ROWS {
            acc[r][c0..c0 + LANES].copy_from_slice(&t[r]);
        }
    }
}

/// `out[start + c][..stride] += Σ_r w[r][c] · x[r][..stride]` for `c < valid`.
#[inline(always)]
fn scatter<T: KernelFloat, const FMA: bool, const DP: usize, const C: usize>(
    out: &mut [T],
    w: &[[T; C]; ROWS],
    x: &[[T; DP]; ROWS],
    stride: usize,
    start: usize,
    valid: usize,
) {
    for c in 0..valid {
        let row = &mut out[(start + c) * stride..][..stride];
        for c0 in (0..stride).step_by(LANES) {
            let mut t = [T::zero(); LANES];
            t.copy_from_slice(&row[c0..c0 + LANES]);
            for r in 0..ROWS {
                let wv = w[r][c];
                for i in 0..LANES {
                    t[i] = madd::<T, FMA>(wv, x[r][c0 + i], t[i]);
                }
            }
            row[c0..c0 + LANES].copy_from_slice(&t);
        }
    }
}

#[inline(always)]
fn madd<T: KernelFloat, const FMA: bool>(a: T, b: T, c: T) -> T {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `s[r][c] = scale · Σ_k a[r][k] · bt[k][start + c]` for a `ROWS × C` tile.
#[inline(always)]
fn tile<T: KernelFloat, const FMA: bool, const DP: usize, const C: usize>(
    a: &[[T; DP]; ROWS],
    d: usize,
    bt: &[T],
    stride: usize,
    start: usize,
    scale: T,
) -> [[T; C]; ROWS] {
    let mut acc = [[T::zero(); C]; ROWS];
    for kk in 0..d {
        let b = &bt[kk * stride + start..][..C];
        for r in 0..ROWS {
            let x = a[r][kk];
            for c in 0..C {
                acc[r][c] = madd::<T, FMA>(x, b[c], acc[r][c]);
            }
        }
    }
    for row in acc.iter_mut() {
        for x in row.iter_mut() {
            *x *= scale;
        }
    }
    acc
}

/// Copies up to [`ROWS`] rows of width `d` starting at row `i0` into a zero-padded tile.
#[inline(always)]
fn load_rows<T: KernelFloat, const DP: usize>(
    x: &[T],
    i0: usize,
    n: usize,
    d: usize,
) -> [[T; DP]; ROWS] {
    let mut t = [[T::zero(); DP]; ROWS];
    for r in 0..ROWS.min(n - i0) {
        t[r][..d].copy_from_slice(&x[(i0 + r) * d..(i0 + r + 1) * d]);
    }
    t
}

/// The tile shapes a head runs with: rows padded to 16, 32 or 128 floats (the register arrays'
/// width, so a 16-wide head does not carry 128-wide zeroed arrays), and tiles of [`SHORT`] keys
/// for 16-wide heads with at most [`SHORT`] keys. Calls `$run::<T, FMA, DP, C>($args)`.
macro_rules! by_shape {
    ($h:expr, $run:ident, $($args:expr),*) => {{
        let (d, nk) = ($h.dims.head_dim, $h.dims.keys);
        if d <= 16 && nk <= SHORT {
            $run::<T, FMA, 16, SHORT>($($args),*)
        } else if d <= 16 {
            $run::<T, FMA, 16, COLS>($($args),*)
        } else if d <= 32 {
            $run::<T, FMA, 32, COLS>($($args),*)
        } else {
            $run::<T, FMA, 128, COLS>($($args),*)
        }
    }};
}

#[inline(always)]
pub(super) fn forward<T: KernelFloat, const FMA: bool>(
    h: &Head<'_, T>,
    scratch: &mut Scratch<T>,
    out: &mut [T],
    lse: &mut [T],
) {
    by_shape!(h, forward_tiles, h, scratch, out, lse)
}

#[inline(always)]
fn forward_tiles<T: KernelFloat, const FMA: bool, const DP: usize, const C: usize>(
    h: &Head<'_, T>,
    scratch: &mut Scratch<T>,
    out: &mut [T],
    lse: &mut [T],
) {
    let (nq, d) = (h.dims.queries, h.dims.head_dim);
    scratch.k.fill(h.k, h.keep, h.dims.keys, d, true, C);
    let kc = &scratch.k;
    let na = kc.index.len();
    if na == 0 {
        out.fill(T::zero());
        lse.fill(T::zero());
        return;
    }
    scratch.v.fill(h.v, h.keep, h.dims.keys, d, false, C);
    let vc = &scratch.v;
    let mut i0 = 0;
    while i0 < nq {
        let rows = ROWS.min(nq - i0);
        let q = load_rows::<T, DP>(h.q, i0, nq, d);
        let mut m = [T::neg_infinity(); ROWS];
        let mut l = [T::zero(); ROWS];
        let mut acc = [[T::zero(); DP]; ROWS];
        let mut start = 0;
        while start < na {
            let mut s = tile::<T, FMA, DP, C>(&q, d, &kc.transposed, kc.padded, start, h.scale);
            let valid = C.min(na - start);
            for r in 0..ROWS {
                for x in s[r][valid..].iter_mut() {
                    *x = T::neg_infinity();
                }
                let block_max = row_max(&s[r]);
                if block_max > m[r] {
                    let correction = T::exp_neg(m[r] - block_max);
                    l[r] *= correction;
                    for a in acc[r][..d].iter_mut() {
                        *a *= correction;
                    }
                    m[r] = block_max;
                }
                for x in s[r].iter_mut() {
                    *x = T::exp_neg(*x - m[r]);
                }
                l[r] += row_sum(&s[r]);
            }
            accumulate::<T, FMA, DP, C>(&mut acc, &s, &vc.rows, vc.stride, start, valid);
            start += C;
        }
        for r in 0..rows {
            let inv = T::one() / l[r];
            for (o, &a) in out[(i0 + r) * d..(i0 + r + 1) * d]
                .iter_mut()
                .zip(&acc[r][..d])
            {
                *o = a * inv;
            }
            lse[i0 + r] = m[r] + l[r].ln();
        }
        i0 += ROWS;
    }
}

#[inline(always)]
pub(super) fn backward<T: KernelFloat, const FMA: bool>(
    h: &Head<'_, T>,
    g: &HeadGrad<'_, T>,
    scratch: &mut Scratch<T>,
    grads: HeadGradOut<'_, T>,
) {
    by_shape!(h, backward_tiles, h, g, scratch, grads)
}

#[inline(always)]
fn backward_tiles<T: KernelFloat, const FMA: bool, const DP: usize, const C: usize>(
    h: &Head<'_, T>,
    g: &HeadGrad<'_, T>,
    scratch: &mut Scratch<T>,
    grads: HeadGradOut<'_, T>,
) {
    let HeadGradOut { dq, dk, dv } = grads;
    let (nq, d) = (h.dims.queries, h.dims.head_dim);
    dq.fill(T::zero());
    dk.fill(T::zero());
    dv.fill(T::zero());
    scratch.k.fill(h.k, h.keep, h.dims.keys, d, true, C);
    scratch.v.fill(h.v, h.keep, h.dims.keys, d, true, C);
    let (kc, vc) = (&scratch.k, &scratch.v);
    let na = kc.index.len();
    if na == 0 {
        return;
    }
    let stride = kc.stride;
    let (dkc, dvc) = (&mut scratch.dk, &mut scratch.dv);
    dkc.clear();
    dkc.resize(na * stride, T::zero());
    dvc.clear();
    dvc.resize(na * stride, T::zero());
    let mut i0 = 0;
    while i0 < nq {
        let rows = ROWS.min(nq - i0);
        let q = load_rows::<T, DP>(h.q, i0, nq, d);
        let d_out = load_rows::<T, DP>(g.d_out, i0, nq, d);
        let mut lse = [T::zero(); ROWS];
        let mut delta = [T::zero(); ROWS];
        for r in 0..rows {
            lse[r] = g.lse[i0 + r];
            let o = &g.out[(i0 + r) * d..(i0 + r + 1) * d];
            delta[r] = d_out[r][..d].iter().zip(o).map(|(&a, &b)| a * b).sum();
        }
        let mut dq_tile = [[T::zero(); DP]; ROWS];
        let mut start = 0;
        while start < na {
            let mut p = tile::<T, FMA, DP, C>(&q, d, &kc.transposed, kc.padded, start, h.scale);
            let dp = tile::<T, FMA, DP, C>(&d_out, d, &vc.transposed, vc.padded, start, T::one());
            let valid = C.min(na - start);
            let mut ds = [[T::zero(); C]; ROWS];
            for r in 0..ROWS {
                for c in 0..C {
                    // Rows past the end of the queries and columns past the keys contribute nothing.
                    let live = r < rows && c < valid;
                    p[r][c] = if live {
                        T::exp_neg(p[r][c] - lse[r])
                    } else {
                        T::zero()
                    };
                    ds[r][c] = p[r][c] * (dp[r][c] - delta[r]) * h.scale;
                }
            }
            accumulate::<T, FMA, DP, C>(&mut dq_tile, &ds, &kc.rows, stride, start, valid);
            scatter::<T, FMA, DP, C>(dkc, &ds, &q, stride, start, valid);
            scatter::<T, FMA, DP, C>(dvc, &p, &d_out, stride, start, valid);
            start += C;
        }
        for r in 0..rows {
            dq[(i0 + r) * d..(i0 + r + 1) * d].copy_from_slice(&dq_tile[r][..d]);
        }
        i0 += ROWS;
    }
    for (jj, &j) in kc.index.iter().enumerate() {
        dk[j * d..(j + 1) * d].copy_from_slice(&dkc[jj * stride..jj * stride + d]);
        dv[j * d..(j + 1) * d].copy_from_slice(&dvc[jj * stride..jj * stride + d]);
    }
}
