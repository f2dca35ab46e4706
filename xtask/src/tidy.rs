//! Tidy checks that run as ordinary tests: every Rust file says what it is for in a `//!` line.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd.flatten() {
        let p = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_module_doc_line() {
    let mut files = Vec::new();
    rust_files(&crate::root(), &mut files);
    assert!(
        files.len() > 10,
        "expected to find the workspace's Rust files, found {}",
        files.len()
    );
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            !std::fs::read_to_string(f)
                .unwrap_or_default()
                .starts_with("//!")
        })
        .map(|f| {
            f.strip_prefix(crate::root())
                .unwrap_or(f)
                .display()
                .to_string()
        })
        .collect();
    assert!(
        missing.is_empty(),
        "these files do not start with a `//!` line saying what they are for:\n{}",
        missing.join("\n")
    );
}

#[test]
fn no_test_is_switched_off() {
    let mut files = Vec::new();
    rust_files(&crate::root(), &mut files);
    let needle = ["#[", "ignore"].concat();
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .contains(&needle)
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "switched-off tests prove nothing: {offenders:?}"
    );
}

/// rustfmt-clean, as CI checks it: an ordinary test (rust-analyzer's tidy), so `cargo test`
/// catches a file left unformatted before review does.
#[test]
fn the_workspace_is_rustfmt_clean() {
    let out = std::process::Command::new(env!("CARGO"))
        .current_dir(crate::root())
        .args(["fmt", "--all", "--", "--check", "-l"])
        .output()
        .expect("cargo runs (rustfmt is a rustup component: `rustup component add rustfmt`)");
    assert!(
        out.status.success(),
        "not rustfmt-clean (run `cargo fmt --all`):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
