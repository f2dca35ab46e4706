//! Tidy: racelab-core does no I/O. No source file names `std::fs`, `std::process` or `std::net`
//! (in a path or a `use std::{..}` group), and the manifest depends on no I/O crate.

use std::path::{Path, PathBuf};

/// Modules of std that reach the outside world.
const IO_MODULES: &[&str] = &["fs", "process", "net"];

/// Crates that do I/O; the core depends on none of them.
const IO_CRATES: &[&str] = &[
    "nix",
    "rusqlite",
    "postgres",
    "mysql",
    "signal-hook",
    "seccompiler",
    "tempfile",
    "indicatif",
    "libc",
];

/// The text of `src` with `//` comments blanked (line numbers kept): a comment may name
/// `std::fs` to say why the core does not use it.
fn without_comments(src: &str) -> Vec<String> {
    src.lines()
        .map(|l| match l.find("//") {
            Some(i) => l[..i].to_string(),
            None => l.to_string(),
        })
        .collect()
}

/// Every mention of an I/O module of std in `src`, as (line, what): `std::fs` paths, and
/// `fs`/`process`/`net` at the top level of a `use std::{...}` group (which may span lines).
fn io_mentions(src: &str) -> Vec<(usize, String)> {
    let lines = without_comments(src);
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        for m in IO_MODULES {
            let path = format!("std::{m}");
            let mut rest = line.as_str();
            while let Some(at) = rest.find(&path) {
                let after = &rest[at + path.len()..];
                if !after.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
                    found.push((i + 1, path.clone()));
                }
                rest = after;
            }
        }
    }
    // `use std::{collections::X, fs, process::Command}`: the names at depth one of the group.
    let text = lines.join("\n");
    let mut from = 0;
    while let Some(at) = text[from..].find("std::{") {
        let open = from + at + "std::".len();
        let mut depth = 0;
        let mut word = String::new();
        let mut word_line = 0;
        let line_of = |pos: usize| text[..pos].matches('\n').count() + 1;
        let mut end = text.len();
        for (off, c) in text[open..].char_indices() {
            let pos = open + off;
            if c.is_alphanumeric() || c == '_' {
                if word.is_empty() {
                    word_line = line_of(pos);
                }
                word.push(c);
                continue;
            }
            if depth == 1 && IO_MODULES.contains(&word.as_str()) && c != '_' {
                found.push((word_line, format!("std::{{{word}}}")));
            }
            word.clear();
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = pos;
                        break;
                    }
                }
                // `std::{fs::read}`: the word before `::` is the module; after it, not.
                ':' => {}
                _ => {}
            }
        }
        from = end.max(open + 1);
    }
    found.sort();
    found.dedup();
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn core_sources_name_no_io_module_of_std() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    assert!(
        files.len() > 10,
        "found only {} core source files",
        files.len()
    );
    let mut problems = Vec::new();
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for (line, what) in io_mentions(&src) {
            let shown = f.strip_prefix(root).unwrap_or(f);
            problems.push(format!(
                "crates/core/{}:{line}: names {what}",
                shown.display()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "racelab-core does no I/O (files, processes and servers are racelab-real's):\n{}",
        problems.join("\n")
    );
}

#[test]
fn core_manifest_depends_on_no_io_crate() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("crates/core/Cargo.toml");
    let mut section = String::new();
    let mut problems = Vec::new();
    for (i, line) in manifest.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        // Benchmarks and tests may use anything; the library may not.
        if section != "[dependencies]" {
            continue;
        }
        let name = line.split(['=', '.', ' ']).next().unwrap_or("");
        if IO_CRATES.contains(&name) {
            problems.push(format!(
                "crates/core/Cargo.toml:{}: depends on {name}",
                i + 1
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "racelab-core depends on no I/O crate:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_check_sees_every_spelling() {
    let src = "use std::collections::BTreeMap;\n\
               // std::fs in a comment is fine\n\
               use std::{fmt, fs};\n\
               use std::{\n    io,\n    process::Command,\n};\n\
               fn f() { let _ = std::net::TcpStream::connect(\"x\"); }\n\
               use std::{sync::{Arc, mpsc}, fsx};\n\
               fn g() { std::fs_like(); }\n";
    assert_eq!(
        io_mentions(src),
        vec![
            (3, "std::{fs}".to_string()),
            (6, "std::{process}".to_string()),
            (8, "std::net".to_string()),
        ]
    );
}
