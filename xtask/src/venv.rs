//! `cargo xtask venv`: the Python environment the gated drivers run in (scenarios/drivers/):
//! a venv under target/ with flufl.lock pinned to the version `scenarios/flufl-lock.race`
//! models. Made once and kept; checked on every use.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The flufl.lock release the model follows step by step.
pub const FLUFL_LOCK: &str = "flufl.lock==10.0.0";

/// The venv's directory (`$RACELAB_VENV` for racelab), made if it is missing or incomplete.
pub fn ensure(target: &Path) -> Result<PathBuf, String> {
    let venv = target.join("racelab-venv");
    let python = venv.join("bin/python3");
    let ready = || {
        Command::new(&python)
            .args(["-c", "import importlib.metadata as m, sys; sys.exit(m.version('flufl.lock') != '10.0.0')"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready() {
        return Ok(venv);
    }
    let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{what} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    let _ = std::fs::remove_dir_all(&venv);
    run(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "python3 -m venv (Debian: apt-get install python3-venv)",
    )?;
    run(
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            FLUFL_LOCK,
        ]),
        &format!("pip install {FLUFL_LOCK} (needs PyPI)"),
    )?;
    if ready() {
        Ok(venv)
    } else {
        Err(format!(
            "{} has no {FLUFL_LOCK} after installing it",
            venv.display()
        ))
    }
}

/// `cargo xtask venv`: make it, print its path.
pub fn run(target: &Path) -> u8 {
    match ensure(target) {
        Ok(v) => {
            println!("{}", v.display());
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            3
        }
    }
}
