// Shared by the targets: the loaders under test take paths (as users give them), so each input
// is written to a per-process file in the temporary folder first.
use std::path::PathBuf;

pub fn as_file(data: &[u8], ext: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("pp-fuzz-{}.{ext}", std::process::id()));
    std::fs::write(&path, data).expect("write fuzz input");
    path
}
