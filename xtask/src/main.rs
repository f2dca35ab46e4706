//! `cargo xtask`: the project's tasks, one module each (rust-analyzer style).

mod bench_locks;
mod db_cmd;
mod fs_cmd;
mod pg_isolation;
mod run_scenarios;
#[cfg(test)]
mod tidy;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  run-scenarios [--quick] [--engines E1,E2]   every scenario x variant x engine; writes target/racelab/summary.json
                                              (as root also the lock scenarios on real NFS in a guest; --no-nfs skips it)
  fs up [--root DIR] [--only LIST] [--json] [--hold]
                                              mount tmpfs, ext4, xfs, btrfs, overlay under one temp root (root only)
  fs down (--root DIR | --state FILE)         unmount, detach and delete what `fs up` made
  bench-locks [--quick] [--no-matrix]        lock benchmarks on every filesystem; writes target/bench-locks/report.md + SVGs
  nfs run [--rig DIR] -- COMMAND...            run COMMAND in a guest (UML, else qemu) with real NFSv4.2/NFSv3 mounts (root only)
  db up [--root DIR] [--only LIST] [--env] [--hold]
                                              start throwaway PostgreSQL and MariaDB servers, print their URLs
  db down [--root DIR]                        stop them and delete their directory
  venv                                        the Python venv gated drivers run in (flufl.lock 10.0.0); prints its path
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run-scenarios") => run_scenarios::run(&args[1..]),
        Some("bench-locks") => bench_locks::run(&args[1..]),
        // fs reports its own errors: its exit codes distinguish bad input, infrastructure and signals.
        Some("fs") => return ExitCode::from(fs_cmd::run(&args[1..])),
        // nfs exits with the guest command's own status.
        Some("nfs") => return ExitCode::from(xtask::nfs::cli::run(&args[1..])),
        Some("db") => return ExitCode::from(db_cmd::run(&args[1..])),
        Some("venv") => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| root().join("target"), std::path::PathBuf::from);
            return ExitCode::from(xtask::venv::run(&target));
        }
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("error: unknown task `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
        None => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> std::path::PathBuf {
    let here = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or(here)
}
