//! CUDA launchers for the fused attention op (the `cuda` feature).
//!
//! The kernels in `src/cuda/attention.cu` are compiled by NVRTC (through the cudarc that candle
//! uses) the first time a device of a given compute capability needs them, and the PTX is cached
//! per capability; candle caches the loaded module per device. Forward runs the f32 kernel, or the
//! tensor-core kernel (bf16 `mma.sync`, f32 accumulation) for bf16 tensors and, when
//! [`set_tensor_cores`] allows it, for f32 tensors rounded to bf16. Backward is the f32 kernels
//! (delta, dQ, dK+dV), deterministic (no atomics).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::cuda::cudarc::driver::{CudaSlice, CudaView, LaunchConfig, PushKernelArg};
use candle_core::cuda::{CudaStorageSlice, WrapErr};
use candle_core::{
    CudaDevice, CudaStorage, CustomOp1, DType, Device, Layout, Result, Shape, Storage, Tensor,
};

use crate::cpu::Dims;
use crate::cuda::source::{
    BWD_DELTA_F32, BWD_DKV_F32, BWD_DQ_F32, FWD_F32, MMA_ROWS_PER_BLOCK, MODULE, ROWS_PER_BLOCK,
    compile_ptx, fwd_mma, launch_dims,
};

static TENSOR_CORES: AtomicBool = AtomicBool::new(false);

/// Lets f32 attention on CUDA use the tensor-core forward (inputs rounded to bf16, f32
/// accumulation): faster, with bf16 input precision. Off by default; bf16 tensors always use it.
pub fn set_tensor_cores(on: bool) {
    TENSOR_CORES.store(on, Ordering::Relaxed);
}

fn compute_capability(dev: &CudaDevice) -> Result<(i32, i32)> {
    dev.cuda_stream().context().compute_capability().w()
}

/// Compiled PTX by compute capability (major, minor).
type PtxCache = Mutex<HashMap<(i32, i32), Arc<str>>>;

/// The PTX for this device's compute capability, compiled once per capability.
fn ptx(dev: &CudaDevice) -> Result<(Arc<str>, String)> {
    static CACHE: OnceLock<PtxCache> = OnceLock::new();
    let cc = compute_capability(dev)?;
    let module = format!("{MODULE}_sm{}{}", cc.0, cc.1);
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache
        .lock()
        .map_err(|_| candle_core::Error::Msg("attention PTX cache lock poisoned".into()))?;
    if let Some(ptx) = cache.get(&cc) {
        return Ok((ptx.clone(), module));
    }
    let ptx = compile_ptx(cc).map_err(|e| {
        candle_core::Error::Cuda(format!("compiling the attention kernels: {e:?}").into())
    })?;
    let text: Arc<str> = ptx.to_src().into();
    cache.insert(cc, text.clone());
    Ok((text, module))
}

/// Loads (compiling on first use) kernel `$name` on `$dev` and launches it on `$cfg` with
/// `$args` in order. A macro because candle does not name its function handle type.
macro_rules! launch {
    ($dev:expr, $name:expr, $cfg:expr, [$($arg:expr),* $(,)?]) => {{
        let (ptx, module) = ptx($dev)?;
        let func = $dev.get_or_load_custom_func($name, &module, &ptx)?;
        let mut builder = func.builder();
        $( builder.arg($arg); )*
        // SAFETY: each call site passes the arguments of the kernel's signature in
        // attention.cu (device buffers of the documented sizes, then i32/f32 scalars), and its
        // grid covers exactly the rows the kernel guards against.
        unsafe { builder.launch($cfg) }.w()?;
    }};
}

fn grid(rows: usize, per_block: u32, bh: usize) -> LaunchConfig {
    let (grid_dim, block_dim) = launch_dims(rows, per_block, bh);
    LaunchConfig {
        grid_dim,
        block_dim,
        shared_mem_bytes: 0,
    }
}

fn view<'a, T>(slice: &'a CudaSlice<T>, layout: &Layout) -> Result<CudaView<'a, T>> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(slice.slice(start..end)),
        None => candle_core::bail!("fused attention (CUDA): input is not contiguous"),
    }
}

fn f32_slice(storage: &CudaStorage) -> Result<&CudaSlice<f32>> {
    storage.as_cuda_slice::<f32>()
}

/// The key mask as a contiguous f32 CUDA tensor `[B, Nk]` (the kernels read
/// `keep[b * Nk + j] != 0`); all ones without a mask, so the kernels have one code path.
fn keep_f32(mask: Option<&Tensor>, b: usize, nk: usize, device: &Device) -> Result<Tensor> {
    match mask {
        Some(m) => m.to_dtype(DType::F32)?.contiguous(),
        None => Tensor::ones((b, nk), DType::F32, device),
    }
}

/// Runs `f` with the CUDA f32 view of `t` (contiguous).
fn with_f32<R>(t: &Tensor, f: impl FnOnce(CudaView<'_, f32>) -> Result<R>) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cuda(s) => f(view(f32_slice(s)?, layout)?),
        _ => candle_core::bail!("fused attention (CUDA): expected a CUDA tensor"),
    }
}

/// Forward: the output storage and the per-row log-sum-exp `[B·H·Nq]`.
pub(crate) fn forward(
    q: (&CudaStorage, &Layout),
    k: (&CudaStorage, &Layout),
    v: (&CudaStorage, &Layout),
    mask: Option<&Tensor>,
    dims: Dims,
) -> Result<(CudaStorage, CudaSlice<f32>)> {
    let dev = q.0.device.clone();
    let (bh, nq, nk, d) = (
        dims.batch * dims.heads,
        dims.queries,
        dims.keys,
        dims.head_dim,
    );
    let scale = 1.0f32 / (d as f32).sqrt();
    let (heads, nq_i, nk_i, d_i) = (dims.heads as i32, nq as i32, nk as i32, d as i32);
    let mut lse = dev.alloc_zeros::<f32>(bh * nq)?;
    let keep = keep_f32(mask, dims.batch, nk, &Device::Cuda(dev.clone()))?;
    let tensor_cores = compute_capability(&dev)?.0 >= 8;
    let out = with_f32(&keep, |keep| {
        Ok(match (&q.0.slice, &k.0.slice, &v.0.slice) {
            (CudaStorageSlice::F32(qs), CudaStorageSlice::F32(ks), CudaStorageSlice::F32(vs)) => {
                let (qv, kv, vv) = (view(qs, q.1)?, view(ks, k.1)?, view(vs, v.1)?);
                // SAFETY (allocation): every element is written by the kernel.
                let mut out = unsafe { dev.alloc::<f32>(bh * nq * d)? };
                let mma = fwd_mma(d, false)
                    .filter(|_| tensor_cores && TENSOR_CORES.load(Ordering::Relaxed));
                match mma {
                    Some(name) => launch!(
                        &dev,
                        &name,
                        grid(nq, MMA_ROWS_PER_BLOCK, bh),
                        [
                            &qv, &kv, &vv, &keep, &mut out, &mut lse, &heads, &nq_i, &nk_i, &scale
                        ]
                    ),
                    None => launch!(
                        &dev,
                        FWD_F32,
                        grid(nq, ROWS_PER_BLOCK, bh),
                        [
                            &qv, &kv, &vv, &keep, &mut out, &mut lse, &heads, &nq_i, &nk_i, &d_i,
                            &scale
                        ]
                    ),
                }
                CudaStorage::wrap_cuda_slice(out, dev.clone())
            }
            (
                CudaStorageSlice::BF16(qs),
                CudaStorageSlice::BF16(ks),
                CudaStorageSlice::BF16(vs),
            ) => {
                let name = fwd_mma(d, true).filter(|_| tensor_cores).ok_or_else(|| {
                    candle_core::Error::Cuda(
                        format!(
                            "fused attention: bf16 needs compute capability 8.0+ and a head dimension in {:?}, got {d}",
                            crate::cuda::source::MMA_HEAD_DIMS
                        )
                        .into(),
                    )
                })?;
                let (qv, kv, vv) = (view(qs, q.1)?, view(ks, k.1)?, view(vs, v.1)?);
                // SAFETY (allocation): every element is written by the kernel.
                let mut out = unsafe { dev.alloc::<half::bf16>(bh * nq * d)? };
                launch!(
                    &dev,
                    &name,
                    grid(nq, MMA_ROWS_PER_BLOCK, bh),
                    [
                        &qv, &kv, &vv, &keep, &mut out, &mut lse, &heads, &nq_i, &nk_i, &scale
                    ]
                );
                CudaStorage::wrap_cuda_slice(out, dev.clone())
            }
            _ => candle_core::bail!("fused attention (CUDA): f32 or bf16 inputs of one dtype"),
        })
    })?;
    Ok((out, lse))
}

/// Backward: (dQ, dK, dV) as f32 tensors, from the saved log-sum-exp.
pub(crate) fn backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    out: &Tensor,
    d_out: &Tensor,
    mask: Option<&Tensor>,
    lse: Arc<CudaSlice<f32>>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let f32c = |t: &Tensor| t.to_dtype(DType::F32)?.contiguous();
    let (q, k, v, out, d_out) = (f32c(q)?, f32c(k)?, f32c(v)?, f32c(out)?, f32c(d_out)?);
    let (b, _, _, _) = q.dims4()?;
    let keep = keep_f32(mask, b, k.dim(2)?, q.device())?;
    let delta = out.apply_op1_no_bwd(&DeltaOp {
        d_out: d_out.clone(),
    })?;
    let inputs = BackwardInputs {
        q: q.clone(),
        k: k.clone(),
        v,
        d_out,
        keep,
        lse,
        delta,
    };
    let dq = q.apply_op1_no_bwd(&DqOp(inputs.clone()))?;
    let dkv = k.apply_op1_no_bwd(&DkvOp(inputs))?;
    Ok((dq, dkv.get(0)?, dkv.get(1)?))
}

#[derive(Clone)]
struct BackwardInputs {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    d_out: Tensor,
    keep: Tensor,
    lse: Arc<CudaSlice<f32>>,
    delta: Tensor,
}

fn cuda_only(name: &str) -> Result<(candle_core::CpuStorage, Shape)> {
    candle_core::bail!("{name}: CUDA only")
}

/// `delta_i = Σ_d dO_id · O_id`, applied to `out`.
struct DeltaOp {
    d_out: Tensor,
}

impl CustomOp1 for DeltaOp {
    fn name(&self) -> &'static str {
        "fused-attention-delta"
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> Result<(candle_core::CpuStorage, Shape)> {
        cuda_only(self.name())
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let dev = s.device.clone();
        let (b, h, nq, d) = l.shape().dims4()?;
        let rows = b * h * nq;
        let out = view(f32_slice(s)?, l)?;
        // SAFETY (allocation): one value per row, each written by the kernel.
        let mut delta = unsafe { dev.alloc::<f32>(rows)? };
        let (rows_i, d_i) = (rows as i64, d as i32);
        let cfg = grid(rows, ROWS_PER_BLOCK, 1);
        with_f32(&self.d_out, |g| {
            launch!(
                &dev,
                BWD_DELTA_F32,
                cfg,
                [&out, &g, &mut delta, &rows_i, &d_i]
            );
            Ok(())
        })?;
        Ok((
            CudaStorage::wrap_cuda_slice(delta, dev),
            Shape::from((b, h, nq)),
        ))
    }
}

struct DqOp(BackwardInputs);

impl CustomOp1 for DqOp {
    fn name(&self) -> &'static str {
        "fused-attention-dq"
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> Result<(candle_core::CpuStorage, Shape)> {
        cuda_only(self.name())
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let x = &self.0;
        let dev = s.device.clone();
        let (b, h, nq, d) = l.shape().dims4()?;
        let nk = x.k.dim(2)?;
        let scale = 1.0f32 / (d as f32).sqrt();
        let (h_i, nq_i, nk_i, d_i) = (h as i32, nq as i32, nk as i32, d as i32);
        let qv = view(f32_slice(s)?, l)?;
        // SAFETY (allocation): every element is written by the kernel.
        let mut dq = unsafe { dev.alloc::<f32>(b * h * nq * d)? };
        let lse = x.lse.as_ref();
        with_f32(&x.k, |kv| {
            with_f32(&x.v, |vv| {
                with_f32(&x.d_out, |gv| {
                    with_f32(&x.delta, |dv| {
                        with_f32(&x.keep, |keep| {
                            launch!(
                                &dev,
                                BWD_DQ_F32,
                                grid(nq, ROWS_PER_BLOCK, b * h),
                                [
                                    &qv, &kv, &vv, &keep, &gv, lse, &dv, &mut dq, &h_i, &nq_i,
                                    &nk_i, &d_i, &scale
                                ]
                            );
                            Ok(())
                        })
                    })
                })
            })
        })?;
        Ok((CudaStorage::wrap_cuda_slice(dq, dev), l.shape().clone()))
    }
}

/// dK and dV, stacked on a new first axis of size 2.
struct DkvOp(BackwardInputs);

impl CustomOp1 for DkvOp {
    fn name(&self) -> &'static str {
        "fused-attention-dkv"
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> Result<(candle_core::CpuStorage, Shape)> {
        cuda_only(self.name())
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let x = &self.0;
        let dev = s.device.clone();
        let (b, h, nk, d) = l.shape().dims4()?;
        let nq = x.q.dim(2)?;
        let scale = 1.0f32 / (d as f32).sqrt();
        let (h_i, nq_i, nk_i, d_i) = (h as i32, nq as i32, nk as i32, d as i32);
        let n = b * h * nk * d;
        let kv = view(f32_slice(s)?, l)?;
        // SAFETY (allocation): every element of both halves is written by the kernel.
        let mut both = unsafe { dev.alloc::<f32>(2 * n)? };
        let lse = x.lse.as_ref();
        {
            let (mut dk, mut dv) = both.split_at_mut(n);
            with_f32(&x.q, |qv| {
                with_f32(&x.v, |vv| {
                    with_f32(&x.d_out, |gv| {
                        with_f32(&x.delta, |delta| {
                            with_f32(&x.keep, |keep| {
                                launch!(
                                    &dev,
                                    BWD_DKV_F32,
                                    grid(nk, ROWS_PER_BLOCK, b * h),
                                    [
                                        &qv, &kv, &vv, &keep, &gv, lse, &delta, &mut dk, &mut dv,
                                        &h_i, &nq_i, &nk_i, &d_i, &scale
                                    ]
                                );
                                Ok(())
                            })
                        })
                    })
                })
            })?;
        }
        Ok((
            CudaStorage::wrap_cuda_slice(both, dev),
            Shape::from((2, b, h, nk, d)),
        ))
    }
}
