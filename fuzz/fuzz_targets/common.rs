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
