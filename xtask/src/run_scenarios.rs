//! `cargo xtask run-scenarios`: build racelab in release mode and run the built-in suite, on the
//! model engines and on every real filesystem this machine can provide.
//!
//! Real filesystems: always a local temp directory; as root, also the filesystem matrix
//! (tmpfs, ext4, xfs, btrfs, overlayfs), brought up for the run and torn down after it — also
//! on Ctrl-C or when the suite fails. A filesystem that cannot come up is passed to the suite as
//! skipped, with the reason, so it shows in the report instead of silently missing.

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xtask::fs_matrix::{Matrix, Options};
use xtask::signals;

/// Returns racelab's exit code (DESIGN.md: 0 met, 1 an expectation failed, 2 bad input, 3 infrastructure).
pub fn run(args: &[String]) -> Result<u8> {
    let mut quick = false;
    let mut real = true;
    let mut engines: Option<String> = None;
    let mut racelab: Option<PathBuf> = None;
    let mut scenarios: Option<PathBuf> = None;
    let mut it = args.iter();
    let usage = "options: --quick, --engines E1,E2, --model-only, --scenarios PATH, --racelab BINARY";
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--model-only" => real = false,
            "--engines" => engines = Some(it.next().context("--engines needs a value, e.g. --engines shuttle-random,loom")?.clone()),
            // For tests: run an already built racelab, on some scenarios only.
            "--racelab" => racelab = Some(PathBuf::from(it.next().context("--racelab needs the path of a racelab binary")?)),
            "--scenarios" => scenarios = Some(PathBuf::from(it.next().context("--scenarios needs a file or directory of *.race files")?)),
            other => bail!("unknown option `{other}` for run-scenarios; {usage}"),
        }
    }
    let root = crate::root();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let racelab = match racelab {
        Some(r) => r,
        None => {
            // Exploration is CPU-bound: a debug build would explore ~20x fewer schedules in the same budget.
            let status = Command::new(env!("CARGO"))
                .args(["build", "--release", "--quiet", "--package", "harness", "--bin", "racelab"])
                .current_dir(&root)
                .status()
                .context("running cargo build")?;
            if !status.success() {
                bail!("building racelab failed");
            }
            target.join("release").join("racelab")
        }
    };
    let mut cmd = Command::new(racelab);
    cmd.current_dir(&root).arg("suite").arg(scenarios.unwrap_or_else(|| root.join("scenarios"))).arg("--out").arg(target.join("racelab"));
    if quick {
        cmd.arg("--quick");
    }
    if let Some(e) = engines {
        cmd.arg("--engines").arg(e);
    }

    // Held until the suite is done; dropping them removes the temp dir and tears the matrix down.
    let mut temp = None;
    let mut matrix = None;
    if real {
        signals::install()?;
        let dir = tempfile::Builder::new().prefix("racelab-tempdir-").tempdir().context("creating a temp directory for the real runs")?;
        cmd.arg(format!("--real=tempdir={}", dir.path().display()));
        temp = Some(dir);
        match bring_up_matrix() {
            Ok(m) => {
                println!("filesystem matrix up at {} in {:.2}s", m.root().display(), m.up_seconds());
                for e in m.entries() {
                    match &e.skipped {
                        None => cmd.arg(format!("--real={}={}", e.name, e.dir.display())),
                        Some(why) => cmd.arg(format!("--real={}=!{}", e.name, why.replace('\n', " "))),
                    };
                }
                matrix = Some(m);
            }
            Err(why) => {
                println!("filesystem matrix unavailable: {why}");
                for fs in ["tmpfs", "ext4", "xfs", "btrfs", "overlay"] {
                    cmd.arg(format!("--real={fs}=!{}", why.replace('\n', " ")));
                }
            }
        }
    }
    let status = run_child(&mut cmd, real)?;
    if let Some(m) = matrix {
        let report = m.down().map_err(|e| anyhow::anyhow!("tearing down the filesystem matrix: {e}"))?;
        if !report.is_clean() {
            eprintln!("warning: the filesystem matrix did not tear down cleanly: {:?}", report.problems);
        }
    }
    drop(temp);
    if let Some(sig) = signals::pending() {
        eprintln!("interrupted by {}; the suite was stopped and everything real was cleaned up", signals::name(sig));
        return Ok(signals::exit_code(sig));
    }
    Ok(status.code().map_or(3, |c| u8::try_from(c).unwrap_or(3)))
}

/// The matrix, when this machine can have one: root, loop devices, the mkfs tools.
fn bring_up_matrix() -> Result<Matrix, String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("not root: the filesystem matrix needs loop devices and mount(2); run as root to include tmpfs, ext4, xfs, btrfs and overlayfs".into());
    }
    Matrix::up(&Options::default()).map_err(|e| e.to_string())
}

/// Runs the suite, forwarding a Ctrl-C or SIGTERM to it (it stops its real runs between steps
/// and cleans up) and waiting for it either way, so the matrix is never torn down under it.
fn run_child(cmd: &mut Command, poll_signals: bool) -> Result<ExitStatus> {
    let mut child = cmd.spawn().context("starting racelab suite")?;
    if !poll_signals {
        return child.wait().context("waiting for racelab suite");
    }
    let mut forwarded = false;
    loop {
        if let Some(status) = child.try_wait().context("waiting for racelab suite")? {
            return Ok(status);
        }
        if let (Some(sig), false) = (signals::pending(), forwarded) {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
            let sig = nix::sys::signal::Signal::try_from(sig).unwrap_or(nix::sys::signal::Signal::SIGTERM);
            let _ = nix::sys::signal::kill(pid, sig);
            forwarded = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
