//! `cargo xtask docs`: every file path and code identifier the docs quote exists.
//!
//! The docs are `README.md`, `data/*.md`, `docs/**/*.md` and every crate's `README.md`. In them,
//! each inline code span (`` `…` ``) without spaces is checked when it is:
//!
//! - a **path** (contains `/` or ends in `.rs`, `.py`, `.sh`, `.cu`, `.md`): a tracked file or
//!   folder, relative to the repository root, to the doc's folder or to a crate folder, or the
//!   tail of a tracked path (paths into other repositories, whose first folder is not one of
//!   ours, are not checked). Placeholders (`<…>`, `*`), URLs and what runs write (`runs/`,
//!   `target/`) are not paths of the repository and are skipped;
//! - a **code path** (`a::b`, optionally with `()`), a **call** (`name()`) or a **snake_case
//!   name** with an underscore (`evenly_spaced`, `time_label`): each segment occurs as a word in
//!   the workspace's Rust code outside comments, string contents included, so file keys and
//!   column names count (a crate's name with `_`).
//!
//! So a renamed module, a deleted function or a moved file that a doc still names fails CI.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the check from the repository root; `Err` lists every stale reference.
pub fn check() -> Result<(), String> {
    let files: Vec<String> = crate::stdout_of(Command::new("git").arg("ls-files"), "git ls-files")?
        .lines()
        .map(str::to_owned)
        .collect();
    let docs: Vec<&String> = files.iter().filter(|f| is_doc(f)).collect();
    let identifiers = rust_identifiers(&files)?;
    let folders: HashSet<String> = files
        .iter()
        .flat_map(|f| {
            let mut parents = Vec::new();
            let mut p = Path::new(f.as_str());
            while let Some(parent) = p.parent().filter(|p| !p.as_os_str().is_empty()) {
                parents.push(parent.to_string_lossy().into_owned());
                p = parent;
            }
            parents
        })
        .collect();
    let crates: Vec<String> = folders
        .iter()
        .filter(|f| f.starts_with("crates/") && f.matches('/').count() == 1)
        .cloned()
        .collect();
    let mut stale = Vec::new();
    let mut checked = 0;
    for doc in docs {
        let text = std::fs::read_to_string(doc).map_err(|e| format!("{doc}: {e}"))?;
        let dir = Path::new(doc.as_str())
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default();
        for (line, span) in code_spans(&text) {
            let ok = match classify(span) {
                Kind::Path(path) => {
                    checked += 1;
                    path_exists(path, &dir, &crates, &files, &folders)
                }
                Kind::Code(segments) => {
                    checked += 1;
                    segments.iter().all(|s| identifiers.contains(*s))
                }
                Kind::Other => true,
            };
            if !ok {
                stale.push(format!("{doc}:{line}: `{span}` does not exist"));
            }
        }
    }
    if stale.is_empty() {
        eprintln!("docs: {checked} quoted paths and identifiers all exist");
        Ok(())
    } else {
        Err(format!(
            "the docs quote what the code does not have:\n{}",
            stale.join("\n")
        ))
    }
}

fn is_doc(f: &str) -> bool {
    f.ends_with(".md")
        && (f == "README.md"
            || f.starts_with("docs/")
            || (f.starts_with("data/") && f.matches('/').count() == 1)
            || (f.starts_with("crates/") && f.ends_with("/README.md")))
}

/// Inline code spans with their line numbers; fenced blocks are skipped.
fn code_spans(text: &str) -> Vec<(usize, &str)> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find('`') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('`') else { break };
            spans.push((i + 1, &after[..end]));
            rest = &after[end + 1..];
        }
    }
    spans
}

enum Kind<'a> {
    Path(&'a str),
    Code(Vec<&'a str>),
    Other,
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn classify(span: &str) -> Kind<'_> {
    if span.is_empty() || span.contains(char::is_whitespace) {
        return Kind::Other;
    }
    let placeholder = ["<", "*", "{", "$", "~", "http", "runs/", "target/", "/tmp"]
        .iter()
        .any(|p| span.contains(p));
    let source_ext = [".rs", ".py", ".sh", ".cu", ".md"]
        .iter()
        .any(|e| span.ends_with(e));
    if (span.contains('/') || source_ext) && !span.contains("::") {
        return if placeholder || span.starts_with('-') || span.contains('=') {
            Kind::Other
        } else {
            Kind::Path(span.trim_start_matches("./"))
        };
    }
    let code = span.strip_suffix("()").unwrap_or(span);
    let segments: Vec<&str> = code.split("::").collect();
    // A lone snake_case name with an underscore is a Rust item, field or key of ours.
    let snake = code.contains('_')
        && code.starts_with(|c: char| c.is_ascii_lowercase())
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let is_code = (span.contains("::") || span.ends_with("()") || snake)
        && segments.iter().all(|s| is_identifier(s));
    if is_code {
        Kind::Code(segments)
    } else {
        Kind::Other
    }
}

fn path_exists(
    path: &str,
    dir: &Path,
    crates: &[String],
    files: &[String],
    folders: &HashSet<String>,
) -> bool {
    let path = path.trim_end_matches('/');
    // Only paths into this repository: a top-level entry, a crate's folder layout, or a bare file
    // name; `pvanalytics/data/…` (another repository) or `America/Denver` are not.
    let first = path.split('/').next().unwrap_or_default();
    let ours = !path.contains('/')
        || files.iter().any(|f| f == first)
        || folders.contains(first)
        || ["src", "tests", "examples", "benches"].contains(&first);
    if !ours {
        return true;
    }
    let tracked = |p: &Path| {
        let p = p.to_string_lossy();
        files.iter().any(|f| f == p.as_ref()) || folders.contains(p.as_ref())
    };
    let mut candidates: Vec<PathBuf> = vec![PathBuf::from(path), dir.join(path)];
    candidates.extend(crates.iter().map(|c| Path::new(c).join(path)));
    candidates.iter().any(|p| tracked(&normalise(p)))
        || files.iter().any(|f| f.ends_with(&format!("/{path}")))
        || folders.iter().any(|f| f.ends_with(&format!("/{path}")))
}

/// `MaskAndReport` → `mask_and_report`.
fn snake_case(word: &str) -> String {
    let mut out = String::new();
    for (i, c) in word.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `a/b/../c` → `a/c`.
fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Every identifier in the workspace's Rust code (comments removed), and its crates' names.
fn rust_identifiers(files: &[String]) -> Result<HashSet<String>, String> {
    let mut words = HashSet::new();
    for f in files.iter().filter(|f| f.ends_with(".rs")) {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"))?;
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or_default();
            for word in code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if is_identifier(word) {
                    // serde's snake_case spelling of a variant (`MaskAndReport` in a config file
                    // is `mask_and_report`).
                    if word.contains(|c: char| c.is_ascii_uppercase()) {
                        words.insert(snake_case(word));
                    }
                    words.insert(word.to_owned());
                }
            }
        }
    }
    for f in files.iter().filter(|f| f.ends_with("Cargo.toml")) {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"))?;
        // Crate names (with `_`) and feature names.
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')) {
            words.insert(word.replace('-', "_"));
        }
    }
    // Names from elsewhere that the docs cite: crates every Rust reader knows, PyTorch's
    // `state_dict`, candle's `zeros_like` and `binary_map_vec_par`, the parquet crate's
    // `skip_till_depth`, and `temp_air`, an example variable name of an observations file.
    for known in [
        "state_dict",
        "zeros_like",
        "binary_map_vec_par",
        "skip_till_depth",
        "temp_air",
        "std",
        "core",
        "candle_core",
        "candle_nn",
        "cudarc",
        "safetensors",
        "arrow",
        "parquet",
        "rayon",
        "criterion",
        "proptest",
        "serde",
        "toml",
        "clap",
        "anyhow",
        "thiserror",
        "plotters",
        "indicatif",
        "gemm",
        "forust_ml",
        "torch",
        "F",
        "nn",
        "functional",
        "scaled_dot_product_attention",
    ] {
        words.insert(known.to_owned());
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_classified_as_paths_code_or_prose() {
        assert!(matches!(
            classify("crates/pv-data/src/lib.rs"),
            Kind::Path(_)
        ));
        assert!(matches!(classify("run.rs"), Kind::Path(_)));
        assert!(matches!(classify("runs/<name>/"), Kind::Other));
        assert!(matches!(classify("pv_data::features::Query"), Kind::Code(s) if s.len() == 3));
        assert!(matches!(classify("latest_t0()"), Kind::Code(s) if s == ["latest_t0"]));
        assert!(matches!(classify("mask_and_report"), Kind::Code(_)));
        assert!(matches!(classify("train.steps"), Kind::Other));
        assert!(matches!(classify("cargo xtask ci"), Kind::Other));
        assert_eq!(snake_case("MaskAndReport"), "mask_and_report");
    }

    #[test]
    fn code_spans_skip_fenced_blocks() {
        let text = "a `x::y` b\n```\n`not::this`\n```\nc `z()`";
        let spans: Vec<&str> = code_spans(text).into_iter().map(|(_, s)| s).collect();
        assert_eq!(spans, ["x::y", "z()"]);
    }
}
