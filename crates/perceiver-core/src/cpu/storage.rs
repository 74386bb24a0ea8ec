//! Reading a CPU tensor's data in place, for the custom ops' CPU kernels.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, Layout, Result, Storage, Tensor, WithDType};

/// The elements of a contiguous layout over `data`; `op` names the caller in the error.
pub(crate) fn contiguous<'a, T>(data: &'a [T], layout: &Layout, op: &str) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: input is not contiguous"),
    }
}

/// The elements of a contiguous CPU storage of element type `T`.
pub(crate) fn typed<'a, T: WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a [T]> {
    contiguous(storage.as_slice::<T>()?, layout, op)
}

/// Runs `f` on the data of contiguous CPU tensors of element type `T`, read in place (no copy)
/// while their storage is locked for reading.
pub(crate) fn with_slices<T: WithDType, R, const N: usize>(
    tensors: [&Tensor; N],
    op: &str,
    f: impl FnOnce([&[T]; N]) -> R,
) -> Result<R> {
    let guards = tensors.map(|t| t.storage_and_layout());
    let mut slices: [&[T]; N] = [&[]; N];
    for (slice, (storage, layout)) in slices.iter_mut().zip(&guards) {
        *slice = match &**storage {
            Storage::Cpu(s) => typed::<T>(s, layout, op)?,
            _ => candle_core::bail!("{op}: expected CPU tensors"),
        };
    }
    Ok(f(slices))
}

/// Vectors of the given lengths, filled by `write`: allocated without the zero-fill of
/// `vec![0; n]`, which was a tenth of a small attention's time and, in the element-wise ops, a
/// memset as long as the work itself.
///
/// # Safety
///
/// `write` must initialise every element of every slice it is given. (A panic in `write`
/// unwinds through here and drops the vectors while their length is still zero: sound.)
pub(crate) unsafe fn written<T, const N: usize>(
    lens: [usize; N],
    write: impl FnOnce([&mut [MaybeUninit<T>]; N]),
) -> [Vec<T>; N] {
    let mut vectors = lens.map(Vec::with_capacity);
    #[cfg(test)]
    for (v, &n) in vectors.iter_mut().zip(&lens) {
        // The crate's unit tests start from all-ones bytes, NaN for the floats: an element
        // `write` misses shows up as NaN, not as whatever the allocator left there. (Not in
        // other builds: the instruction gate would count it.)
        // SAFETY: bytes written into the vector's own capacity, `n` elements long.
        unsafe { std::ptr::write_bytes(v.as_mut_ptr(), 0xFF, n) };
    }
    let mut len = lens.iter();
    write(
        vectors
            .each_mut()
            .map(|v| &mut v.spare_capacity_mut()[..len.next().copied().unwrap_or(0)]),
    );
    for (v, &n) in vectors.iter_mut().zip(&lens) {
        // SAFETY: the caller's `write` initialised the first `n` elements, within the capacity.
        unsafe { v.set_len(n) };
    }
    vectors
}

/// One vector of `len` elements filled by `write` ([`written`] for a single output).
///
/// # Safety
///
/// As [`written`]: `write` initialises every element of the slice.
pub(crate) unsafe fn written_one<T>(
    len: usize,
    write: impl FnOnce(&mut [MaybeUninit<T>]),
) -> Vec<T> {
    // SAFETY: forwarded to the caller.
    let [v] = unsafe { written([len], |[out]| write(out)) };
    v
}
