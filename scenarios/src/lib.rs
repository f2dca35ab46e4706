//! The built-in scenarios: where they live, so tests and tools can find them.

use std::path::PathBuf;

/// The directory holding the built-in `*.race` files.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every built-in scenario file, sorted by name.
pub fn all() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "race"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}
