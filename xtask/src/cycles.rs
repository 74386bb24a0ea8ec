//! `cargo xtask cycles`: no module of a crate imports, directly or through others, a module that
//! imports it back (`use crate::a` in `b` and `use crate::b` in `a`, or longer circles).
//!
//! Modules are the `.rs` files under each `crates/*/src` (`a/mod.rs` is `a`, `a/b.rs` is `a::b`);
//! an edge is a `crate::<module>` or `super::<module>` path in code, outside comments and outside
//! the `#[cfg(test)]` module at the end of a file. A parent's `mod child;` is not an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Checks every crate; `Err` lists each circle found.
pub fn check() -> Result<(), String> {
    let mut circles = Vec::new();
    let mut crates: Vec<_> = std::fs::read_dir("crates")
        .map_err(|e| format!("crates: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path().join("src")))
        .filter(|p| p.is_dir())
        .collect();
    crates.sort();
    for src in &crates {
        let graph = module_graph(src)?;
        for circle in find_circles(&graph) {
            circles.push(format!("{}: {}", src.display(), circle.join(" -> ")));
        }
    }
    if circles.is_empty() {
        eprintln!("cycles: no import circle in {} crates", crates.len());
        Ok(())
    } else {
        Err(format!("import circles:\n{}", circles.join("\n")))
    }
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<(), String> {
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Module name of a file under `src`: `a/b.rs` → `a::b`, `a/mod.rs` → `a`.
fn module_name(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|c| c != "mod")
        .collect();
    parts.join("::")
}

fn module_graph(src: &Path) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    let mut files = Vec::new();
    rust_files(src, &mut files)?;
    let mut texts = BTreeMap::new();
    for file in &files {
        let name = module_name(src, file);
        if name == "lib" || name == "main" {
            continue;
        }
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code: String = code
            .lines()
            .map(|l| l.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        texts.insert(name, code);
    }
    let modules: BTreeSet<String> = texts.keys().cloned().collect();
    let resolve = |path: &str| -> Option<String> {
        // The longest known module that `path` starts with.
        let segments: Vec<&str> = path.split("::").collect();
        (1..=segments.len())
            .rev()
            .map(|n| segments[..n].join("::"))
            .find(|m| modules.contains(m))
    };
    let mut graph = BTreeMap::new();
    for (name, code) in &texts {
        let parent = name.rsplit_once("::").map(|(p, _)| p.to_owned());
        let mut deps = BTreeSet::new();
        for (prefix, base) in [("crate::", None), ("super::", parent.as_deref())] {
            for (at, _) in code.match_indices(prefix) {
                if code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let rest: String = code[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let full = match base {
                    Some(b) if !b.is_empty() => format!("{b}::{rest}"),
                    _ => rest,
                };
                if let Some(m) = resolve(full.trim_end_matches(':'))
                    && &m != name
                    && !m.starts_with(&format!("{name}::"))
                {
                    deps.insert(m);
                }
            }
        }
        graph.insert(name.clone(), deps);
    }
    Ok(graph)
}

/// Each circle once, as the modules along it (first repeated at the end).
fn find_circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut circles = BTreeSet::new();
    for start in graph.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if next == start {
                    let mut circle = path.clone();
                    // Rotate so the smallest name leads: one entry per circle.
                    let min = circle
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, m)| m.as_str())
                        .map_or(0, |(i, _)| i);
                    circle.rotate_left(min);
                    circle.push(circle[0].clone());
                    circles.insert(circle);
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    circles.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_circle_is_found_once_and_a_chain_is_not_one() {
        let graph: BTreeMap<String, BTreeSet<String>> = [
            ("a", vec!["b"]),
            ("b", vec!["c"]),
            ("c", vec!["a"]),
            ("d", vec!["a"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
        .collect();
        assert_eq!(find_circles(&graph), vec![vec!["a", "b", "c", "a"]]);
        let chain: BTreeMap<String, BTreeSet<String>> = [("a", vec!["b"]), ("b", vec![])]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
            .collect();
        assert!(find_circles(&chain).is_empty());
    }
}
