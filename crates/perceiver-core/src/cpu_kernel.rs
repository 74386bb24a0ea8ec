//! The fused CPU attention kernels, forward and backward, for one (batch, head) at a time.
//!
//! Forward: one pass over key blocks with an online softmax (running max `m` and sum `l` per
//! query), so the `Nq × Nk` probability matrix is never stored; each query keeps only its
//! log-sum-exp `m + ln l` for the backward pass. Backward recomputes the probabilities from it
//! (FlashAttention-2's recurrence): `P = exp(S − lse)`, `dV += Pᵀ dO`, `dP = dO Vᵀ`,
//! `dS = P ∘ (dP − rowsum(dO ∘ O))`, `dQ = scale · dS K`, `dK = scale · dSᵀ Q`.
//!
//! Layout for speed: padding keys are dropped first (compaction), keys are transposed to
//! `[D, Nk]` and padded to a multiple of [`COLS`], and queries are processed [`ROWS`] at a time,
//! so the score tile `ROWS × COLS` is a register-blocked outer-product micro-kernel (every loaded
//! key value feeds `ROWS` multiply-adds). The same generic code is compiled three times — for
//! AVX-512, AVX2+FMA and the baseline — and picked at run time, so one binary is fast on any x86-64.
//!
//! Heads with many queries and keys (see [`crate::cpu_blocked::worth_blocking`]) go to the blocked
//! GEMM kernels of [`crate::cpu_blocked`] instead, compiled under the same instruction-set dispatch.

use num_traits::Float;

/// Query rows per tile.
const ROWS: usize = 4;
/// Keys per register tile (two AVX-512 or four AVX2 vectors of f32).
const COLS: usize = 32;
/// Width of one chunk of a head-dimension row; rows are padded to a multiple of it.
const LANES: usize = 16;

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
    /// relative error below 3e-7, no branches, so the loops around it vectorise.
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

/// Unmasked keys (or values), compacted: rows `[n, stride]` (`stride` = D padded to a multiple
/// of [`LANES`]), and, when asked for, transposed `[D, n_pad]` with `n_pad` a multiple of [`COLS`]
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
    fn fill(&mut self, x: &[T], keep: Option<&[u8]>, n: usize, d: usize, transpose: bool) {
        self.index.clear();
        self.index
            .extend((0..n).filter(|&j| keep.is_none_or(|m| m[j] != 0)));
        let na = self.index.len();
        self.padded = na.div_ceil(COLS) * COLS;
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
pub struct Scratch<T> {
    blocked: crate::cpu_blocked::Scratch<T>,
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
            blocked: crate::cpu_blocked::Scratch::default(),
            k: empty(),
            v: empty(),
            dk: Vec::new(),
            dv: Vec::new(),
        }
    }
}

/// Maximum of a score row, with a vector-wide accumulator so it vectorises.
#[inline(always)]
fn row_max<T: KernelFloat>(s: &[T; COLS]) -> T {
    let mut m = [T::neg_infinity(); LANES];
    for chunk in s.chunks_exact(LANES) {
        for i in 0..LANES {
            m[i] = m[i].max(chunk[i]);
        }
    }
    m.iter().copied().fold(T::neg_infinity(), T::max)
}

/// Sum of a score row, likewise.
#[inline(always)]
fn row_sum<T: KernelFloat>(s: &[T; COLS]) -> T {
    let mut m = [T::zero(); LANES];
    for chunk in s.chunks_exact(LANES) {
        for i in 0..LANES {
            m[i] += chunk[i];
        }
    }
    m.iter().copied().sum()
}

/// `acc[r][..stride] += Σ_{c < valid} w[r][c] · rows[start + c][..stride]`, a register-blocked
/// `ROWS × LANES` outer-product update per chunk of the row.
#[inline(always)]
fn accumulate<T: KernelFloat, const FMA: bool>(
    acc: &mut [[T; 128]; ROWS],
    w: &[[T; COLS]; ROWS],
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
fn scatter<T: KernelFloat, const FMA: bool>(
    out: &mut [T],
    w: &[[T; COLS]; ROWS],
    x: &[[T; 128]; ROWS],
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

/// `s[r][c] = scale · Σ_k a[r][k] · bt[k][start + c]` for a `ROWS × COLS` tile.
#[inline(always)]
fn tile<T: KernelFloat, const FMA: bool>(
    a: &[[T; 128]; ROWS],
    d: usize,
    bt: &[T],
    stride: usize,
    start: usize,
    scale: T,
) -> [[T; COLS]; ROWS] {
    let mut acc = [[T::zero(); COLS]; ROWS];
    for kk in 0..d {
        let b = &bt[kk * stride + start..][..COLS];
        for r in 0..ROWS {
            let x = a[r][kk];
            for c in 0..COLS {
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
fn load_rows<T: KernelFloat>(x: &[T], i0: usize, n: usize, d: usize) -> [[T; 128]; ROWS] {
    let mut t = [[T::zero(); 128]; ROWS];
    for r in 0..ROWS.min(n - i0) {
        t[r][..d].copy_from_slice(&x[(i0 + r) * d..(i0 + r + 1) * d]);
    }
    t
}

#[inline(always)]
fn forward_impl<T: KernelFloat, const FMA: bool>(
    h: &Head<'_, T>,
    scratch: &mut Scratch<T>,
    out: &mut [T],
    lse: &mut [T],
) {
    let (nq, d) = (h.dims.queries, h.dims.head_dim);
    if crate::cpu_blocked::worth_blocking(nq, h.dims.keys, d) {
        return crate::cpu_blocked::forward(h, &mut scratch.blocked, out, lse);
    }
    scratch.k.fill(h.k, h.keep, h.dims.keys, d, true);
    let kc = &scratch.k;
    let na = kc.index.len();
    if na == 0 {
        out.fill(T::zero());
        lse.fill(T::zero());
        return;
    }
    scratch.v.fill(h.v, h.keep, h.dims.keys, d, false);
    let vc = &scratch.v;
    let mut i0 = 0;
    while i0 < nq {
        let rows = ROWS.min(nq - i0);
        let q = load_rows(h.q, i0, nq, d);
        let mut m = [T::neg_infinity(); ROWS];
        let mut l = [T::zero(); ROWS];
        let mut acc = [[T::zero(); 128]; ROWS];
        let mut start = 0;
        while start < na {
            let mut s = tile::<T, FMA>(&q, d, &kc.transposed, kc.padded, start, h.scale);
            let valid = COLS.min(na - start);
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
            accumulate::<T, FMA>(&mut acc, &s, &vc.rows, vc.stride, start, valid);
            start += COLS;
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
fn backward_impl<T: KernelFloat, const FMA: bool>(
    h: &Head<'_, T>,
    g: &HeadGrad<'_, T>,
    scratch: &mut Scratch<T>,
    dq: &mut [T],
    dk: &mut [T],
    dv: &mut [T],
) {
    let (nq, d) = (h.dims.queries, h.dims.head_dim);
    if crate::cpu_blocked::worth_blocking(nq, h.dims.keys, d) {
        return crate::cpu_blocked::backward(h, g, &mut scratch.blocked, dq, dk, dv);
    }
    dq.fill(T::zero());
    dk.fill(T::zero());
    dv.fill(T::zero());
    scratch.k.fill(h.k, h.keep, h.dims.keys, d, true);
    scratch.v.fill(h.v, h.keep, h.dims.keys, d, true);
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
        let q = load_rows(h.q, i0, nq, d);
        let d_out = load_rows(g.d_out, i0, nq, d);
        let mut lse = [T::zero(); ROWS];
        let mut delta = [T::zero(); ROWS];
        for r in 0..rows {
            lse[r] = g.lse[i0 + r];
            let o = &g.out[(i0 + r) * d..(i0 + r + 1) * d];
            delta[r] = d_out[r][..d].iter().zip(o).map(|(&a, &b)| a * b).sum();
        }
        let mut dq_tile = [[T::zero(); 128]; ROWS];
        let mut start = 0;
        while start < na {
            let mut p = tile::<T, FMA>(&q, d, &kc.transposed, kc.padded, start, h.scale);
            let dp = tile::<T, FMA>(&d_out, d, &vc.transposed, vc.padded, start, T::one());
            let valid = COLS.min(na - start);
            let mut ds = [[T::zero(); COLS]; ROWS];
            for r in 0..ROWS {
                for c in 0..COLS {
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
            accumulate::<T, FMA>(&mut dq_tile, &ds, &kc.rows, stride, start, valid);
            scatter::<T, FMA>(dkc, &ds, &q, stride, start, valid);
            scatter::<T, FMA>(dvc, &p, &d_out, stride, start, valid);
            start += COLS;
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

/// The widest instruction set this CPU offers the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F (x86-64).
    Avx512,
    /// AVX2 with FMA (x86-64).
    Avx2Fma,
    /// Whatever the build targets (SSE2 on x86-64).
    Baseline,
}

/// Detects the instruction set once per call site (the check is a cached CPUID read).
pub fn isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx2Fma;
        }
    }
    Isa::Baseline
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn forward_avx512<T: KernelFloat>(
    h: &Head<'_, T>,
    scratch: &mut Scratch<T>,
    out: &mut [T],
    lse: &mut [T],
) {
    forward_impl::<T, true>(h, scratch, out, lse)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn forward_avx2<T: KernelFloat>(
    h: &Head<'_, T>,
    scratch: &mut Scratch<T>,
    out: &mut [T],
    lse: &mut [T],
) {
    forward_impl::<T, true>(h, scratch, out, lse)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn backward_avx512<T: KernelFloat>(
    h: &Head<'_, T>,
    g: &HeadGrad<'_, T>,
    s: &mut Scratch<T>,
    dq: &mut [T],
    dk: &mut [T],
    dv: &mut [T],
) {
    backward_impl::<T, true>(h, g, s, dq, dk, dv)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn backward_avx2<T: KernelFloat>(
    h: &Head<'_, T>,
    g: &HeadGrad<'_, T>,
    s: &mut Scratch<T>,
    dq: &mut [T],
    dk: &mut [T],
    dv: &mut [T],
) {
    backward_impl::<T, true>(h, g, s, dq, dk, dv)
}

/// Forward for one (batch, head): writes `out [Nq, D]` and `lse [Nq]`. A query with no unmasked
/// key gets a zero output (and lse 0, unused by backward). Head dimensions up to 128.
pub fn forward_one<T: KernelFloat>(
    h: &Head<'_, T>,
    isa: Isa,
    scratch: &mut Scratch<T>,
    out: &mut [T],
    lse: &mut [T],
) {
    assert!(
        h.dims.head_dim <= 128,
        "head dimension {} > 128",
        h.dims.head_dim
    );
    match isa {
        // SAFETY: `isa` comes from `isa()`, which checked that the CPU has these features.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { forward_avx512(h, scratch, out, lse) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2Fma => unsafe { forward_avx2(h, scratch, out, lse) },
        _ => forward_impl::<T, false>(h, scratch, out, lse),
    }
}

/// Backward for one (batch, head): writes `dq [Nq, D]`, `dk, dv [Nk, D]` (zero for padding keys).
pub fn backward_one<T: KernelFloat>(
    h: &Head<'_, T>,
    g: &HeadGrad<'_, T>,
    isa: Isa,
    scratch: &mut Scratch<T>,
    dq: &mut [T],
    dk: &mut [T],
    dv: &mut [T],
) {
    assert!(
        h.dims.head_dim <= 128,
        "head dimension {} > 128",
        h.dims.head_dim
    );
    match isa {
        // SAFETY: `isa` comes from `isa()`, which checked that the CPU has these features.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { backward_avx512(h, g, scratch, dq, dk, dv) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2Fma => unsafe { backward_avx2(h, g, scratch, dq, dk, dv) },
        _ => backward_impl::<T, false>(h, g, scratch, dq, dk, dv),
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

    /// Every instruction-set path gives the same result as the baseline, within rounding, for
    /// the register-tile kernels (small heads) and the blocked ones (large heads).
    #[test]
    fn every_isa_path_agrees() {
        for (nq, nk, d) in [(7, 45, 24), (70, 530, 16)] {
            assert_eq!(
                crate::cpu_blocked::worth_blocking(nq, nk, d),
                nq > 7,
                "the shapes cover both kernels"
            );
            isa_paths_agree(nq, nk, d);
        }
    }

    fn isa_paths_agree(nq: usize, nk: usize, d: usize) {
        let values = |n: usize, s: u32| {
            (0..n)
                .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ s) % 1000) as f32 / 500.0 - 1.0)
                .collect::<Vec<f32>>()
        };
        let (q, k, v, d_out) = (
            values(nq * d, 1),
            values(nk * d, 2),
            values(nk * d, 3),
            values(nq * d, 4),
        );
        let keep: Vec<u8> = (0..nk).map(|j| (j % 5 != 0) as u8).collect();
        let dims = Dims {
            batch: 1,
            heads: 1,
            queries: nq,
            keys: nk,
            head_dim: d,
        };
        let head = Head {
            q: &q,
            k: &k,
            v: &v,
            keep: Some(&keep),
            dims,
            scale: 0.2,
        };
        let run = |isa: Isa| {
            let (mut out, mut lse) = (vec![0.0; nq * d], vec![0.0; nq]);
            forward_one(&head, isa, &mut Scratch::default(), &mut out, &mut lse);
            let (mut dq, mut dk, mut dv) =
                (vec![0.0; nq * d], vec![0.0; nk * d], vec![0.0; nk * d]);
            backward_one(
                &head,
                &HeadGrad {
                    out: &out,
                    d_out: &d_out,
                    lse: &lse,
                },
                isa,
                &mut Scratch::default(),
                &mut dq,
                &mut dk,
                &mut dv,
            );
            [out, lse, dq, dk, dv]
        };
        let base = run(Isa::Baseline);
        let best = run(isa());
        for (a, b) in base.iter().zip(&best) {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() < 1e-5, "{x} vs {y}");
            }
        }
    }
}
