//! Every CUDA kernel compiles to PTX for the architectures we target (sm_80 for A100-class
//! tensor cores, sm_90 for H100/H200), with NVRTC loaded at run time: a syntax or type error in
//! the kernels fails CI without a GPU. Run with `scripts/install-nvrtc.sh` then
//! `cargo test -p perceiver-core --features ptx-check --test cuda_ptx` (the xtask does both).

#![cfg(feature = "ptx-check")]

use perceiver_core::cuda::source as cuda_source;

#[test]
fn every_kernel_compiles_to_ptx_for_sm80_and_sm90() {
    for cc in [(8, 0), (9, 0)] {
        let arch = cuda_source::nvrtc_arch(cc);
        let ptx = cuda_source::compile_ptx(cc)
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
fn launch_geometry_covers_every_row() {
    assert_eq!(cuda_source::nvrtc_arch((9, 0)), "compute_90");
    for rows in [0, 1, 4, 5, 63, 64, 65, 1000] {
        let (grid, block) = cuda_source::launch_dims(rows, cuda_source::ROWS_PER_BLOCK, 6);
        assert_eq!(block, (cuda_source::BLOCK_THREADS, 1, 1));
        assert_eq!(grid.1, 6);
        assert!(grid.0 >= 1 && grid.0 * cuda_source::ROWS_PER_BLOCK >= rows as u32);
        assert!((grid.0 - 1) * cuda_source::ROWS_PER_BLOCK < rows.max(1) as u32);
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
