//! `cargo xtask run-scenarios`: build racelab in release mode and run the built-in suite.

use std::process::Command;

use anyhow::{bail, Context, Result};

/// Returns racelab's exit code (DESIGN.md: 0 met, 1 an expectation failed, 2 bad input, 3 infrastructure).
pub fn run(args: &[String]) -> Result<u8> {
    let mut quick = false;
    let mut engines: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--engines" => engines = Some(it.next().context("--engines needs a value, e.g. --engines shuttle-random,loom")?.clone()),
            other => bail!("unknown option `{other}` for run-scenarios; options: --quick, --engines E1,E2"),
        }
    }
    let root = crate::root();
    // Exploration is CPU-bound: a debug build would explore ~20x fewer schedules in the same budget.
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--package", "harness", "--bin", "racelab"])
        .current_dir(&root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building racelab failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), std::path::PathBuf::from);
    let mut cmd = Command::new(target.join("release").join("racelab"));
    cmd.current_dir(&root).arg("suite").arg(root.join("scenarios")).arg("--out").arg(target.join("racelab"));
    if quick {
        cmd.arg("--quick");
    }
    if let Some(e) = engines {
        cmd.arg("--engines").arg(e);
    }
    let status = cmd.status().context("running racelab suite")?;
    Ok(status.code().map_or(3, |c| u8::try_from(c).unwrap_or(3)))
}
