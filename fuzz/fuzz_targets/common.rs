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
/// (what a user gets), so under the fuzzer those must not abort. This hook stays silent for panics
/// raised inside the parquet and arrow crates and aborts at once (keeping the stack for libFuzzer)
/// for any other. A parquet/arrow panic that pv-data failed to catch still unwinds to libfuzzer-sys's
/// own `catch_unwind`, which aborts: it is still found.
pub fn abort_on_panics_outside_parquet() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_decoder = info.location().is_some_and(|l| {
            let file = l.file();
            file.contains("/parquet-") || file.contains("/arrow-")
        });
        if !in_decoder {
            default_hook(info);
            std::process::abort();
        }
    }));
}
