//! The CUDA attention kernels' source, entry points, launch geometry and compilation: what the op
//! (`cuda/op.rs`, feature `cuda`), the GPU check (`examples/gpu_check.rs`, feature `gpu-check`) and
//! the PTX test (`tests/cuda_ptx.rs`, feature `ptx-check`) share, so the three cannot disagree on
//! how a kernel is compiled or how many rows a block covers. The source is compiled at run time by
//! NVRTC (once per compute capability) and, in CI, to PTX for every target architecture without a
//! GPU.

/// `src/cuda/attention.cu`: f32 forward and backward, and the tensor-core (bf16 `mma.sync`)
/// forward.
pub const ATTENTION: &str = include_str!("attention.cu");

/// Module name the kernels are cached under, per device.
pub const MODULE: &str = "power_perceiver_attention";

/// f32 forward: one warp per query row (grid: ⌈Nq/4⌉ × B·H, block 128).
pub const FWD_F32: &str = "attn_fwd_f32";
/// Backward, first pass: `delta_i = Σ_d dO·O` (grid ⌈B·H·Nq/4⌉, block 128).
pub const BWD_DELTA_F32: &str = "attn_bwd_delta_f32";
/// Backward: dQ, one warp per query row (grid ⌈Nq/4⌉ × B·H, block 128).
pub const BWD_DQ_F32: &str = "attn_bwd_dq_f32";
/// Backward: dK and dV, one warp per key (grid ⌈Nk/4⌉ × B·H, block 128).
pub const BWD_DKV_F32: &str = "attn_bwd_dkv_f32";

/// Threads per block of every kernel (4 warps).
pub const BLOCK_THREADS: u32 = 128;
/// Rows (queries, keys or (batch·head, query) pairs) per block of the f32 kernels: one warp a row.
pub const ROWS_PER_BLOCK: u32 = 4;
/// Query rows per block of the tensor-core forward: 16 per warp.
pub const MMA_ROWS_PER_BLOCK: u32 = 64;

/// Grid and block dimensions (x, y, z) of a launch over `rows` rows for each of `bh`
/// (batch·head) pairs, `per_block` rows to a block.
pub fn launch_dims(rows: usize, per_block: u32, bh: usize) -> ((u32, u32, u32), (u32, u32, u32)) {
    (
        ((rows as u32).div_ceil(per_block).max(1), bh as u32, 1),
        (BLOCK_THREADS, 1, 1),
    )
}

/// NVRTC options of every compilation of [`ATTENTION`].
pub const NVRTC_OPTIONS: [&str; 1] = ["--std=c++17"];

/// The NVRTC architecture for a compute capability: `compute_<major><minor>`.
pub fn nvrtc_arch(cc: (i32, i32)) -> String {
    format!("compute_{}{}", cc.0, cc.1)
}

/// Compiles [`ATTENTION`] to PTX for compute capability `cc` with NVRTC (the cudarc that candle
/// uses under `cuda`; loaded at run time under `ptx-check`).
#[cfg(any(feature = "cuda", feature = "ptx-check"))]
pub fn compile_ptx(cc: (i32, i32)) -> Result<nvrtc::Ptx, nvrtc::CompileError> {
    // NVRTC wants a 'static architecture name: one small string per capability, per call site
    // that compiles (the op caches its PTX per capability).
    let arch: &'static str = Box::leak(nvrtc_arch(cc).into_boxed_str());
    nvrtc::compile_ptx_with_opts(
        ATTENTION,
        nvrtc::CompileOptions {
            arch: Some(arch),
            options: NVRTC_OPTIONS.iter().map(|o| o.to_string()).collect(),
            ..Default::default()
        },
    )
}

#[cfg(all(feature = "cuda", not(feature = "ptx-check")))]
use candle_core::cuda::cudarc::nvrtc;
#[cfg(feature = "ptx-check")]
use cudarc::nvrtc;

/// Head dimensions with a tensor-core forward.
pub const MMA_HEAD_DIMS: [usize; 4] = [16, 32, 64, 128];

/// The tensor-core forward for head dimension `d` (one of [`MMA_HEAD_DIMS`]) and inputs in
/// bf16 (`true`) or f32 rounded to bf16 on load (`false`); grid ⌈Nq/64⌉ × B·H, block 128.
pub fn fwd_mma(d: usize, bf16_inputs: bool) -> Option<String> {
    MMA_HEAD_DIMS.contains(&d).then(|| {
        format!(
            "attn_fwd_mma_{}in_d{d}",
            if bf16_inputs { "bf16" } else { "f32" }
        )
    })
}

/// Every entry point in [`ATTENTION`].
pub fn kernels() -> Vec<String> {
    let mut names: Vec<String> = [FWD_F32, BWD_DELTA_F32, BWD_DQ_F32, BWD_DKV_F32]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for d in MMA_HEAD_DIMS {
        for bf16 in [false, true] {
            names.extend(fwd_mma(d, bf16));
        }
    }
    names
}
