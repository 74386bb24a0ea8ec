//! Scaled dot-product attention with key-padding masks, as one candle custom op with a fused CPU
//! kernel (forward and backward), and the plain composed-op implementation kept as the reference.
//!
//! Shapes: `q [B, H, Nq, D]`, `k, v [B, H, Nk, D]`, optional `key_mask [B, Nk]` (non-zero = attend),
//! output `[B, H, Nq, D]`. A query whose keys are all masked gets a zero output, not NaN.
//!
//! On CUDA (the `cuda` feature), the same op runs hand-written kernels (`src/cuda/attention.cu`,
//! compiled by NVRTC at run time; launchers in `crate::cuda`): `cuda_fwd` for the forward and
//! `bwd` dispatching on the device for dQ, dK, dV. Without the feature a CUDA tensor gets a clear
//! error, never a silent fallback.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, D, DType, Device, Layout, Result, Shape, Tensor};

use crate::cpu::storage::written;
use crate::cpu::{
    Dims, Head, HeadGrad, HeadGradOut, KernelFloat, Scratch, backward_one, forward_one, isa,
};
use crate::parallel;

/// Which implementation computes attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionImpl {
    /// The fused custom op (CPU kernels; CUDA kernels with the `cuda` feature).
    #[default]
    Fused,
    /// Composed from candle's tensor ops: the reference.
    Composed,
}

/// Scaled dot-product attention; see the module documentation for shapes.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_mask: Option<&Tensor>,
    how: AttentionImpl,
) -> Result<Tensor> {
    check_shapes(q, k, v, key_mask)?;
    match how {
        AttentionImpl::Fused => fused_attention(q, k, v, key_mask),
        AttentionImpl::Composed => composed_attention(q, k, v, key_mask),
    }
}

fn check_shapes(q: &Tensor, k: &Tensor, v: &Tensor, key_mask: Option<&Tensor>) -> Result<()> {
    let (b, h, _, d) = q.dims4()?;
    let (kb, kh, nk, kd) = k.dims4()?;
    if (kb, kh, kd) != (b, h, d) || v.dims() != k.dims() {
        candle_core::bail!(
            "attention: q {:?}, k {:?}, v {:?} do not agree",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    if let Some(m) = key_mask
        && m.dims() != [b, nk]
    {
        candle_core::bail!("attention: key mask {:?}, expected [{b}, {nk}]", m.dims());
    }
    if d > 128 {
        candle_core::bail!(
            "attention: head dimension {d} > 128 is not supported by the fused kernels"
        );
    }
    if q.dtype() != k.dtype() || q.dtype() != v.dtype() {
        candle_core::bail!(
            "attention: dtypes differ ({:?}, {:?}, {:?})",
            q.dtype(),
            k.dtype(),
            v.dtype()
        );
    }
    Ok(())
}

/// The reference: `softmax(q kᵀ / √D + mask) v`, composed from ops that all have a backward.
pub fn composed_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_mask: Option<&Tensor>,
) -> Result<Tensor> {
    let (b, _, _, d) = q.dims4()?;
    let nk = k.dim(2)?;
    let scale = 1.0 / (d as f64).sqrt();
    let scores = (q.matmul(&k.t()?)? * scale)?;
    // Subtracting the (detached) row maximum does not change the softmax or its gradient.
    let keep = key_mask
        .map(|m| {
            m.to_dtype(q.dtype())?
                .ne(0.0)?
                .to_dtype(q.dtype())?
                .reshape((b, 1, 1, nk))
        })
        .transpose()?;
    let scores = match &keep {
        // Masked scores are pushed far down before the max so they cannot set it.
        Some(keep) => scores.broadcast_add(&((keep - 1.0)? * 1e30)?)?,
        None => scores,
    };
    let max = scores.max_keepdim(D::Minus1)?.detach();
    let mut e = scores.broadcast_sub(&max)?.exp()?;
    if let Some(keep) = &keep {
        e = e.broadcast_mul(keep)?;
    }
    let sum = e.sum_keepdim(D::Minus1)?;
    // A fully masked row has sum 0: divide by 1 instead, giving a zero output.
    let safe = (&sum + sum.eq(0.0)?.to_dtype(sum.dtype())?)?;
    e.broadcast_div(&safe)?.matmul(v)
}

/// The fused op. Holds the key mask (no gradient) and, after forward, the per-row log-sum-exp
/// that backward needs: `B·H·Nq` numbers instead of a `B·H·Nq·Nk` matrix.
pub struct FusedAttention {
    keep: Option<Vec<u8>>,
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    mask: Option<Tensor>,
    /// The forward pass's per-query log-sum-exp, in the inputs' float type.
    lse: Mutex<Option<Arc<CpuStorage>>>,
    #[cfg(feature = "cuda")]
    lse_cuda: Mutex<Option<std::sync::Arc<candle_core::cuda::cudarc::driver::CudaSlice<f32>>>>,
}

impl FusedAttention {
    fn new(key_mask: Option<&Tensor>) -> Result<Self> {
        let keep = match key_mask {
            Some(m) if m.device().is_cpu() => Some(
                m.to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?
                    .iter()
                    .map(|&x| (x != 0.0) as u8)
                    .collect(),
            ),
            _ => None,
        };
        Ok(FusedAttention {
            keep,
            mask: key_mask.cloned(),
            lse: Mutex::new(None),
            #[cfg(feature = "cuda")]
            lse_cuda: Mutex::new(None),
        })
    }
}

/// Runs the fused op: `q, k, v` are made contiguous first.
pub fn fused_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_mask: Option<&Tensor>,
) -> Result<Tensor> {
    let op = FusedAttention::new(key_mask)?;
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

fn dims_of(q: &Layout, k: &Layout) -> Result<Dims> {
    let (batch, heads, queries, head_dim) = q.shape().dims4()?;
    let keys = k.shape().dims()[2];
    Ok(Dims {
        batch,
        heads,
        queries,
        keys,
        head_dim,
    })
}

fn slice<'a, T: candle_core::WithDType>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    crate::cpu::storage::typed(s, l, "fused attention")
}

impl FusedAttention {
    /// The inputs of (batch·head) `bh`, cut from whole `[B, H, N, D]` q, k and v.
    fn head<'a, T>(
        &'a self,
        bh: usize,
        [q, k, v]: [&'a [T]; 3],
        dims: Dims,
        scale: T,
    ) -> Head<'a, T> {
        let (nq, nk, d) = (dims.queries, dims.keys, dims.head_dim);
        let b = bh / dims.heads;
        let kv = bh * nk * d..(bh + 1) * nk * d;
        Head {
            q: &q[bh * nq * d..(bh + 1) * nq * d],
            k: &k[kv.clone()],
            v: &v[kv],
            keep: self.keep.as_deref().map(|m| &m[b * nk..(b + 1) * nk]),
            dims,
            scale,
        }
    }

    fn forward_typed<T: KernelFloat + candle_core::WithDType>(
        &self,
        q: &[T],
        k: &[T],
        v: &[T],
        dims: Dims,
    ) -> (Vec<T>, Vec<T>) {
        let (nq, d) = (dims.queries, dims.head_dim);
        let heads = dims.batch * dims.heads;
        if nq == 0 || d == 0 {
            return (vec![T::zero(); heads * nq * d], vec![T::zero(); heads * nq]);
        }
        let scale = T::from(1.0 / (d as f64).sqrt()).unwrap_or_else(T::one);
        let isa = isa();
        // SAFETY: the chunks cover both vectors (nonzero sizes, every head handed out) and
        // `forward_one` writes every element of its head's outputs (the ISA-agreement test
        // checks it by starting from NaN).
        let [out, lse] = unsafe {
            written([heads * nq * d, heads * nq], |[out, lse]| {
                let heads = parallel::ranges(heads);
                let outs = parallel::cut(out, nq * d, &heads);
                let lses = parallel::cut(lse, nq, &heads);
                let parts: Vec<_> = heads.into_iter().zip(outs).zip(lses).collect();
                parallel::run(parts, |((heads, out), lse)| {
                    let mut scratch = Scratch::default();
                    for ((bh, o), l) in heads.zip(out.chunks_mut(nq * d)).zip(lse.chunks_mut(nq)) {
                        let head = self.head(bh, [q, k, v], dims, scale);
                        forward_one(&head, isa, &mut scratch, o, l);
                    }
                });
            })
        };
        (out, lse)
    }
}

impl CustomOp3 for FusedAttention {
    fn name(&self) -> &'static str {
        "fused-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = dims_of(l1, l2)?;
        let (storage, lse) = match s1 {
            CpuStorage::F32(_) => {
                let (o, lse) =
                    self.forward_typed::<f32>(slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?, dims);
                (CpuStorage::F32(o), CpuStorage::F32(lse))
            }
            CpuStorage::F64(_) => {
                let (o, lse) =
                    self.forward_typed::<f64>(slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?, dims);
                (CpuStorage::F64(o), CpuStorage::F64(lse))
            }
            _ => candle_core::bail!("fused attention: only f32 and f64 run on the CPU"),
        };
        save_lse(&self.lse, Arc::new(lse))?;
        Ok((storage, l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let dims = dims_of(l1, l2)?;
        let (out, lse) =
            crate::cuda::forward((s1, l1), (s2, l2), (s3, l3), self.mask.as_ref(), dims)?;
        save_lse(&self.lse_cuda, std::sync::Arc::new(lse))?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        out: &Tensor,
        d_out: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if q.device().is_cuda() {
            return self.cuda_bwd(q, k, v, out, d_out);
        }
        if !q.device().is_cpu() {
            candle_core::bail!("fused attention backward: no kernel for {:?}", q.device());
        }
        let lse = saved_lse(&self.lse)?;
        let (batch, heads, queries, head_dim) = q.dims4()?;
        let dims = Dims {
            batch,
            heads,
            queries,
            keys: k.dim(2)?,
            head_dim,
        };
        let (dq, dk, dv) = match q.dtype() {
            DType::F32 => self.backward_typed::<f32>(q, k, v, out, d_out, &lse, dims)?,
            DType::F64 => self.backward_typed::<f64>(q, k, v, out, d_out, &lse, dims)?,
            other => candle_core::bail!("fused attention backward: unsupported dtype {other:?}"),
        };
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

/// Keeps the forward pass's log-sum-exp in `slot` for the backward pass.
fn save_lse<T>(slot: &Mutex<Option<T>>, lse: T) -> Result<()> {
    *slot
        .lock()
        .map_err(|_| candle_core::Error::Msg("attention lse lock poisoned".into()))? = Some(lse);
    Ok(())
}

/// The log-sum-exp the forward pass saved in `slot`, for the backward pass.
fn saved_lse<T: Clone>(slot: &Mutex<Option<T>>) -> Result<T> {
    slot.lock()
        .map_err(|_| candle_core::Error::Msg("attention lse lock poisoned".into()))?
        .clone()
        .ok_or_else(|| candle_core::Error::Msg("fused attention backward before forward".into()))
}

impl FusedAttention {
    #[cfg(feature = "cuda")]
    fn cuda_bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        out: &Tensor,
        d_out: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let lse = saved_lse(&self.lse_cuda)?;
        let (dq, dk, dv) = crate::cuda::backward(q, k, v, out, d_out, self.mask.as_ref(), lse)?;
        Ok((
            Some(dq.to_dtype(q.dtype())?),
            Some(dk.to_dtype(k.dtype())?),
            Some(dv.to_dtype(v.dtype())?),
        ))
    }

    #[cfg(not(feature = "cuda"))]
    fn cuda_bwd(
        &self,
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        candle_core::bail!(
            "fused attention: this build has no CUDA kernels; enable the `cuda` feature"
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn backward_typed<T: KernelFloat + candle_core::WithDType>(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        out: &Tensor,
        d_out: &Tensor,
        lse: &CpuStorage,
        dims: Dims,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let lse = lse.as_slice::<T>()?;
        let [q, k, v, out, d_out] = [q, k, v, out, d_out].map(Tensor::contiguous);
        let (q, k, v, out, d_out) = (q?, k?, v?, out?, d_out?);
        // Read in place from their storage: no copies of the inputs.
        let (dq, dk, dv) = crate::cpu::storage::with_slices(
            [&q, &k, &v, &out, &d_out],
            "fused attention backward",
            |inputs| self.backward_heads::<T>(inputs, lse, dims),
        )?;
        let device = q.device();
        Ok((
            Tensor::from_vec(dq, q.shape(), device)?,
            Tensor::from_vec(dk, k.shape(), device)?,
            Tensor::from_vec(dv, v.shape(), device)?,
        ))
    }

    /// dQ, dK and dV of every (batch, head) from q, k, v, the output and its gradient.
    fn backward_heads<T: KernelFloat>(
        &self,
        [qv, kv, vv, ov, dov]: [&[T]; 5],
        lse: &[T],
        dims: Dims,
    ) -> (Vec<T>, Vec<T>, Vec<T>) {
        let (nq, nk, d) = (dims.queries, dims.keys, dims.head_dim);
        if nq == 0 || nk == 0 || d == 0 {
            // No output, or an output that is zero whatever the inputs: zero gradients.
            let zeros = |n: usize| vec![T::zero(); n];
            return (zeros(qv.len()), zeros(kv.len()), zeros(vv.len()));
        }
        let scale = T::from(1.0 / (d as f64).sqrt()).unwrap_or_else(T::one);
        let isa = isa();
        // SAFETY: as in the forward: every head's chunks handed to `backward_one`, which writes
        // every element of its gradients.
        let [dq, dk, dv] = unsafe {
            written([qv.len(), kv.len(), vv.len()], |[dq, dk, dv]| {
                let heads = parallel::ranges(dims.batch * dims.heads);
                let dqs = parallel::cut(dq, nq * d, &heads);
                let dks = parallel::cut(dk, nk * d, &heads);
                let dvs = parallel::cut(dv, nk * d, &heads);
                let parts: Vec<_> = heads
                    .into_iter()
                    .zip(dqs)
                    .zip(dks.into_iter().zip(dvs))
                    .collect();
                parallel::run(parts, |((heads, dq), (dk, dv))| {
                    let mut scratch = Scratch::default();
                    let grads = dq
                        .chunks_mut(nq * d)
                        .zip(dk.chunks_mut(nk * d).zip(dv.chunks_mut(nk * d)));
                    for (bh, (dq, (dk, dv))) in heads.zip(grads) {
                        let qs = bh * nq * d..(bh + 1) * nq * d;
                        let head = self.head(bh, [qv, kv, vv], dims, scale);
                        let grad = HeadGrad {
                            out: &ov[qs.clone()],
                            d_out: &dov[qs],
                            lse: &lse[bh * nq..(bh + 1) * nq],
                        };
                        backward_one(&head, &grad, isa, &mut scratch, HeadGradOut { dq, dk, dv });
                    }
                });
            })
        };
        (dq, dk, dv)
    }
}

/// Whether a tensor is on a device the fused op can run on in this build.
pub fn fused_supported(device: &Device) -> bool {
    device.is_cpu() || (cfg!(feature = "cuda") && device.is_cuda())
}
