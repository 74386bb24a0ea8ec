// Shared by the targets: the loaders under test take paths (as users give them), so each input
// is written to a per-process file in the temporary folder first.
use std::path::PathBuf;

pub fn as_file(data: &[u8], ext: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("pp-fuzz-{}.{ext}", std::process::id()));
    std::fs::write(&path, data).expect("write fuzz input");
    path
}

/// libfuzzer-sys installs a panic hook that aborts on every panic, even one that is caught. pv-data
/// catches the parquet crate's panics on corrupt files and turns them into `DataError::Parquet`
/// (what a user gets), so under the fuzzer those must not abort. This hook stays silent for a
/// panic with the parquet or arrow crates on its stack (the panic itself may be raised in `core`,
/// e.g. an overflow check inside the decoder) and aborts at once, keeping the stack for libFuzzer,
/// on any other. A decoder panic that pv-data failed to catch still unwinds to libfuzzer-sys's own
/// `catch_unwind`, which aborts: it is still found.
pub fn abort_on_panics_outside_parquet() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Inlined frames print short names ("read_records<…>"), so look for the crates anywhere
        // in the trace: symbol paths, generic arguments or source paths. Matching too much is
        // safe: a panic nobody catches still aborts in libfuzzer-sys.
        let stack = std::backtrace::Backtrace::force_capture().to_string();
        let in_decoder = stack.contains("parquet") || stack.contains("arrow");
        if !in_decoder {
            default_hook(info);
            std::process::abort();
        }
    }));
}

/// The system allocator with a ceiling on any one allocation: a fuzz input is a few KiB, so a
/// request above [`LARGEST_ALLOCATION`] is an amplification (a size taken from the file without a
/// check) and aborts, which libFuzzer records as a crash with the input that caused it.
pub struct CeilingAllocator;

/// 256 MiB.
pub const LARGEST_ALLOCATION: usize = 256 << 20;

// SAFETY: every call is forwarded unchanged to the system allocator, or aborts before allocating.
unsafe impl std::alloc::GlobalAlloc for CeilingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.size() > LARGEST_ALLOCATION {
            std::process::abort();
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.size() > LARGEST_ALLOCATION {
            std::process::abort();
        }
        // SAFETY: as above.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if new_size > LARGEST_ALLOCATION {
            std::process::abort();
        }
        // SAFETY: as above.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CeilingAllocator = CeilingAllocator;
