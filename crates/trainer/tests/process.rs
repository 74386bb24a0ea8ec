//! The process set-up of `trainer::configure_process`: a freed multi-MiB block is reused
//! without page-faulting through fresh pages again. Alone in its own test binary, because the
//! set-up is process-wide.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_freed_large_block_is_reused_without_page_faults() {
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        eprintln!("GLIBC_TUNABLES is set, so configure_process leaves the allocator alone");
        return;
    }
    // SAFETY: the only test in this binary; no other thread reads the environment.
    unsafe { trainer::configure_process() };
    let minor_faults = || {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: `usage` is a valid, writable rusage.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
        assert_eq!(rc, 0, "getrusage");
        // SAFETY: initialised by the successful call above.
        unsafe { usage.assume_init() }.ru_minflt
    };
    const BYTES: usize = 16 << 20; // 4,096 pages of 4 KiB
    let touch = || std::hint::black_box(vec![1u8; BYTES]).len();
    touch();
    let before = minor_faults();
    touch();
    let faults = minor_faults() - before;
    // glibc's default returns the block to the kernel on free: about 4,096 faults here.
    assert!(
        faults < 256,
        "{faults} page faults re-allocating a freed 16 MiB block"
    );
}
