//! The CUDA attention kernels' source and entry points. The source is compiled at run time by
//! NVRTC (under the `cuda` feature, once per device) and, in CI, to PTX for every target
//! architecture without a GPU (the `ptx-check` feature and `tests/cuda_ptx.rs`).

/// `src/cuda/attention.cu`: f32 forward and backward, and the tensor-core (bf16 `mma.sync`)
/// forward.
pub const ATTENTION: &str = include_str!("cuda/attention.cu");

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
