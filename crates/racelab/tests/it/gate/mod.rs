//! The gate: unmodified programs (here dash scripts and the real flufl.lock) as actors, their
//! file-system calls stepped by racelab's schedules; failures replay through the gate, and a
//! process that exits, dies or hangs is reported and reaped.

use std::path::{Path, PathBuf};

use racelab_lang::ir::Program;
use racelab_real::gate::run::{Chooser, GateOptions, Last};

mod clients_and_threads;
mod notification;
mod processes;
mod real_locks;

/// Writes `files` into a fresh directory and compiles `scenario.race` from it.
fn setup(scenario: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<Program>, GateOptions) {
    let dir = tempfile::tempdir().expect("a temp dir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write a test file");
    }
    let file = dir.path().join("scenario.race");
    std::fs::write(&file, scenario).expect("write the scenario");
    let sc = racelab_core::lang::compile(&file.display().to_string(), scenario)
        .unwrap_or_else(|e| panic!("the test scenario compiles: {e:?}"));
    let mut opts = GateOptions::new(&file, dir.path()).expect("gate options");
    opts.racelab = PathBuf::from(env!("CARGO_BIN_EXE_racelab"));
    (dir, sc.variants, opts)
}

/// Always the lowest enabled choice: actors in order, faults last.
struct Lowest;

impl Chooser for Lowest {
    fn next_choice(&mut self, runnable: &[usize], _last: Option<Last>) -> Option<usize> {
        runnable.first().copied()
    }
}

/// Processes still alive whose command line mentions `needle`.
fn processes_mentioning(needle: &Path) -> Vec<String> {
    let needle = needle.display().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&needle) {
                out.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

/// A built-in scenario's variant, with gate options for a fresh directory.
fn builtin(stem: &str, variant: &str) -> (Program, GateOptions, tempfile::TempDir) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../scenarios/{stem}.race"));
    let src = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {stem}.race: {e}"));
    let sc = racelab_core::lang::compile(&file.display().to_string(), &src)
        .unwrap_or_else(|e| panic!("{stem}.race compiles: {e:?}"));
    let prog = sc.variant(variant).expect("the variant exists").clone();
    let base = tempfile::tempdir().expect("a temp dir");
    let mut opts = GateOptions::new(&file, base.path()).expect("gate options");
    opts.racelab = PathBuf::from(env!("CARGO_BIN_EXE_racelab"));
    (prog, opts, base)
}

/// Runs the racelab binary; returns (exit code, stdout, stderr).
fn racelab(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_racelab"))
        .args(args)
        .output()
        .expect("run racelab");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
