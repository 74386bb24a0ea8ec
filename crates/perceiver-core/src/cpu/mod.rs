//! The fused CPU attention kernels, forward and backward, one (batch, head) at a time: the
//! register-tile kernels of [`direct`] for small heads, the cache-blocked GEMM kernels of
//! [`blocked`] for large ones ([`blocked::worth_blocking`]). Both are compiled three times — for
//! AVX-512, AVX2+FMA and the baseline — and picked at run time here, so one binary is fast on any
//! x86-64. On AVX-512, small f32 heads 16 wide (every head of the default model) go to the
//! hand-vectorised kernels of [`narrow`], which put queries in the vector lanes. [`storage`]
//! reads candle's CPU storage as slices.
//!
//! Modules depend downwards only: `mod.rs` (dispatch) → `direct`, `blocked`, `narrow` → `head`.

pub(crate) mod blocked;
pub(crate) mod direct;
pub(crate) mod head;
#[cfg(target_arch = "x86_64")]
pub(crate) mod narrow;
pub(crate) mod storage;

use std::mem::MaybeUninit;

pub use head::{Dims, Head, HeadGrad, HeadGradOut, KernelFloat};

/// Buffers one worker thread reuses across (batch, head) pairs, so small heads cost no allocation.
pub struct Scratch<T> {
    direct: direct::Scratch<T>,
    blocked: blocked::Scratch<T>,
    /// The unmasked keys' indices, for [`narrow`].
    keys: Vec<usize>,
}

impl<T> Default for Scratch<T> {
    fn default() -> Self {
        Scratch {
            direct: direct::Scratch::default(),
            blocked: blocked::Scratch::default(),
            keys: Vec::new(),
        }
    }
}

/// `x` as f32s when `T` is f32: the AVX-512 kernels of [`narrow`] exist for f32 only.
#[cfg(target_arch = "x86_64")]
fn as_f32<T: KernelFloat>(x: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: `T` is `f32`, so the slice's memory already holds f32s.
        .then(|| unsafe { &*(x as *const [T] as *const [f32]) })
}

/// `x` as f32s when `T` is f32, mutably (for outputs not yet written).
#[cfg(target_arch = "x86_64")]
fn as_f32_mut<T: KernelFloat>(x: &mut [MaybeUninit<T>]) -> Option<&mut [MaybeUninit<f32>]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: as in `as_f32`; `MaybeUninit<T>` has `T`'s layout.
        .then(|| unsafe { &mut *(x as *mut [MaybeUninit<T>] as *mut [MaybeUninit<f32>]) })
}

/// `x` zero-filled, as initialised floats: for the kernels that accumulate into their outputs.
fn zeroed<T: KernelFloat>(x: &mut [MaybeUninit<T>]) -> &mut [T] {
    x.fill(MaybeUninit::new(T::zero()));
    // SAFETY: every element was just initialised, and `MaybeUninit<T>` has `T`'s layout.
    unsafe { &mut *(x as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// The f32 view of a head that [`narrow`]'s kernels take: f32, [`narrow::applies`], not a
/// blocked head, and an AVX-512 CPU.
#[cfg(target_arch = "x86_64")]
fn narrow_head<'a, T: KernelFloat>(h: &Head<'a, T>, isa: Isa) -> Option<Head<'a, f32>> {
    let Dims {
        queries,
        keys,
        head_dim,
        ..
    } = h.dims;
    if isa != Isa::Avx512
        || !narrow::applies(head_dim)
        || blocked::worth_blocking(queries, keys, head_dim)
    {
        return None;
    }
    Some(Head {
        q: as_f32(h.q)?,
        k: as_f32(h.k)?,
        v: as_f32(h.v)?,
        keep: h.keep,
        dims: h.dims,
        scale: h.scale.to_f32()?,
    })
}

#[inline(always)]
fn forward_impl<T: KernelFloat, const FMA: bool>(
    h: &Head<'_, T>,
    scratch: &mut Scratch<T>,
    out: &mut [T],
    lse: &mut [T],
) {
    if blocked::worth_blocking(h.dims.queries, h.dims.keys, h.dims.head_dim) {
        blocked::forward(h, &mut scratch.blocked, out, lse)
    } else {
        direct::forward::<T, FMA>(h, &mut scratch.direct, out, lse)
    }
}

#[inline(always)]
fn backward_impl<T: KernelFloat, const FMA: bool>(
    h: &Head<'_, T>,
    g: &HeadGrad<'_, T>,
    scratch: &mut Scratch<T>,
    grads: HeadGradOut<'_, T>,
) {
    if blocked::worth_blocking(h.dims.queries, h.dims.keys, h.dims.head_dim) {
        blocked::backward(h, g, &mut scratch.blocked, grads)
    } else {
        direct::backward::<T, FMA>(h, g, &mut scratch.direct, grads)
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

/// Runs `f` compiled for AVX2 and FMA where the CPU has them: `f` is inlined into a function
/// with those target features, so its loops vectorise 8 floats wide instead of SSE2's 4, and
/// `round` and `mul_add` become single instructions. For the elementwise and row kernels (GELU,
/// LayerNorm, bias); call it inside each parallel task, since a closure handed to rayon is not
/// inlined.
#[inline(always)]
pub(crate) fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if isa() != Isa::Baseline {
            // SAFETY: `isa()` checked that the CPU has AVX2 and FMA.
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// `Σ f(xᵢ)` over `x` with 8 independent partial sums, so the loop vectorises (a single running
/// sum is a chain of dependent additions that the compiler may not reorder).
#[inline(always)]
pub(crate) fn lane_sum<T: num_traits::Float>(x: &[T], f: impl Fn(T) -> T) -> T {
    let mut lanes = [T::zero(); 8];
    let mut chunks = x.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = *lane + f(v);
        }
    }
    let tail = chunks.remainder().iter().fold(T::zero(), |a, &v| a + f(v));
    lanes.iter().fold(tail, |a, &l| a + l)
}

/// `Σ f(aᵢ, bᵢ)` over equally long `a` and `b`, with 8 partial sums as [`lane_sum`].
#[inline(always)]
pub(crate) fn lane_sum2<T: num_traits::Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> T {
    let mut lanes = [T::zero(); 8];
    let (mut ca, mut cb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (ca, cb) in (&mut ca).zip(&mut cb) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(ca).zip(cb) {
            *lane = *lane + f(x, y);
        }
    }
    let tail = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .fold(T::zero(), |acc, (&x, &y)| acc + f(x, y));
    lanes.iter().fold(tail, |acc, &l| acc + l)
}

/// The forward and backward kernels compiled for one instruction set: `$forward` and
/// `$backward`, with `target_feature(enable = $features)` (callers check the CPU has them).
macro_rules! isa_kernels {
    ($forward:ident, $backward:ident, $features:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        fn $forward<T: KernelFloat>(
            h: &Head<'_, T>,
            scratch: &mut Scratch<T>,
            out: &mut [T],
            lse: &mut [T],
        ) {
            forward_impl::<T, true>(h, scratch, out, lse)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        fn $backward<T: KernelFloat>(
            h: &Head<'_, T>,
            g: &HeadGrad<'_, T>,
            s: &mut Scratch<T>,
            grads: HeadGradOut<'_, T>,
        ) {
            backward_impl::<T, true>(h, g, s, grads)
        }
    };
}

isa_kernels!(forward_avx512, backward_avx512, "avx512f,avx2,fma");
isa_kernels!(forward_avx2, backward_avx2, "avx2,fma");

/// The kernels keep a head's rows in registers: head dimensions up to 128.
fn check_head_dim(dims: Dims) {
    assert!(
        dims.head_dim <= 128,
        "head dimension {} > 128",
        dims.head_dim
    );
}

/// Forward for one (batch, head): writes every element of `out [Nq, D]` and `lse [Nq]`, which
/// need not be initialised. A query with no unmasked key gets a zero output (and lse 0, unused
/// by backward). Head dimensions up to 128.
pub fn forward_one<T: KernelFloat>(
    h: &Head<'_, T>,
    isa: Isa,
    scratch: &mut Scratch<T>,
    out: &mut [MaybeUninit<T>],
    lse: &mut [MaybeUninit<T>],
) {
    check_head_dim(h.dims);
    #[cfg(target_arch = "x86_64")]
    if let Some(h32) = narrow_head(h, isa)
        && let (Some(out), Some(lse)) = (as_f32_mut(&mut *out), as_f32_mut(&mut *lse))
    {
        // SAFETY: `narrow_head` checked that `isa` is AVX-512, which `isa()` found on this CPU.
        unsafe { narrow::forward(&h32, &mut scratch.keys, out, lse) };
        return;
    }
    let (out, lse) = (zeroed(out), zeroed(lse));
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

/// Backward for one (batch, head): writes every element of `grads`, which need not be
/// initialised (`dk`, `dv` zero for padding keys).
pub fn backward_one<T: KernelFloat>(
    h: &Head<'_, T>,
    g: &HeadGrad<'_, T>,
    isa: Isa,
    scratch: &mut Scratch<T>,
    grads: HeadGradOut<'_, MaybeUninit<T>>,
) {
    check_head_dim(h.dims);
    let HeadGradOut { dq, dk, dv } = grads;
    #[cfg(target_arch = "x86_64")]
    if let Some(h32) = narrow_head(h, isa)
        && let (Some(out), Some(d_out), Some(lse)) = (as_f32(g.out), as_f32(g.d_out), as_f32(g.lse))
        && let (Some(dq), Some(dk), Some(dv)) = (
            as_f32_mut(&mut *dq),
            as_f32_mut(&mut *dk),
            as_f32_mut(&mut *dv),
        )
    {
        let g32 = HeadGrad { out, d_out, lse };
        // SAFETY: `narrow_head` checked that `isa` is AVX-512, which `isa()` found on this CPU.
        unsafe { narrow::backward(&h32, &g32, &mut scratch.keys, HeadGradOut { dq, dk, dv }) };
        return;
    }
    let grads = HeadGradOut {
        dq: zeroed(dq),
        dk: zeroed(dk),
        dv: zeroed(dv),
    };
    match isa {
        // SAFETY: `isa` comes from `isa()`, which checked that the CPU has these features.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { backward_avx512(h, g, scratch, grads) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2Fma => unsafe { backward_avx2(h, g, scratch, grads) },
        _ => backward_impl::<T, false>(h, g, scratch, grads),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every instruction-set path gives the same result as the baseline, within rounding, for
    /// the register-tile kernels (small heads), the blocked ones (large heads) and, on AVX-512,
    /// the narrow ones (small heads 16 wide).
    #[test]
    fn every_isa_path_agrees() {
        for (nq, nk, d) in [(7, 45, 24), (70, 530, 16), (21, 37, 16)] {
            assert_eq!(
                blocked::worth_blocking(nq, nk, d),
                nq == 70,
                "the shapes cover the register-tile, blocked and (AVX-512) narrow kernels"
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
        // Outputs start as NaN: an element a kernel does not write stays NaN and fails below.
        let nans = |n: usize| vec![MaybeUninit::new(f32::NAN); n];
        let written = |x: Vec<MaybeUninit<f32>>| -> Vec<f32> {
            // SAFETY: every element was initialised (to NaN, then by the kernel).
            x.into_iter().map(|x| unsafe { x.assume_init() }).collect()
        };
        let run = |isa: Isa| {
            let (mut out, mut lse) = (nans(nq * d), nans(nq));
            forward_one(&head, isa, &mut Scratch::default(), &mut out, &mut lse);
            let (out, lse) = (written(out), written(lse));
            let (mut dq, mut dk, mut dv) = (nans(nq * d), nans(nk * d), nans(nk * d));
            backward_one(
                &head,
                &HeadGrad {
                    out: &out,
                    d_out: &d_out,
                    lse: &lse,
                },
                isa,
                &mut Scratch::default(),
                HeadGradOut {
                    dq: &mut dq,
                    dk: &mut dk,
                    dv: &mut dv,
                },
            );
            [out, lse, written(dq), written(dk), written(dv)]
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
