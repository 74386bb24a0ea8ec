//! Every CUDA kernel compiles to PTX for the architectures we target (sm_80 for A100-class
//! tensor cores, sm_90 for H100/H200), with NVRTC loaded at run time: a syntax or type error in
//! the kernels fails CI without a GPU. Run with `scripts/install-nvrtc.sh` then
//! `cargo test -p perceiver-core --features ptx-check --test cuda_ptx` (the xtask does both).

#![cfg(feature = "ptx-check")]

use cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};
use perceiver_core::cuda_source;

#[test]
fn every_kernel_compiles_to_ptx_for_sm80_and_sm90() {
    for arch in ["compute_80", "compute_90"] {
        let ptx = compile_ptx_with_opts(
            cuda_source::ATTENTION,
            CompileOptions {
                arch: Some(arch),
                options: vec!["--std=c++17".into()],
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("NVRTC failed for {arch}: {e:?}"));
        let text = ptx.to_src();
        for name in cuda_source::kernels() {
            assert!(
                text.contains(&format!(".entry {name}(")),
                "{arch}: kernel {name} missing from the PTX"
            );
        }
        // The fast path really uses tensor cores.
        assert!(
            text.contains("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"),
            "{arch}: no mma"
        );
    }
}

#[test]
fn kernel_names_are_complete() {
    assert_eq!(cuda_source::kernels().len(), 4 + 8);
    assert_eq!(cuda_source::fwd_mma(48, false), None);
    assert_eq!(
        cuda_source::fwd_mma(64, true).as_deref(),
        Some("attn_fwd_mma_bf16in_d64")
    );
}
