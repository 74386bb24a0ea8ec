//! Reading a CPU tensor's data in place, for the custom ops' CPU kernels.

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
