//! `cargo xtask venv`: the Python environment the gated drivers run in (scenarios/drivers/):
//! a venv under target/ with flufl.lock pinned to the version `scenarios/flufl-lock.race`
//! models, and each filelock release `scenarios/filelock.race` models in a directory of its
//! own (`$RACELAB_VENV/filelock/VERSION`, put on sys.path by the driver: one site-packages
//! holds one version), and the npm packages the Node drivers load, each release in a prefix of
//! its own (`$RACELAB_VENV/npm/NAME@VERSION/node_modules/NAME`). Made once and kept; checked on
//! every use.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The flufl.lock release the model follows step by step.
pub const FLUFL_LOCK: &str = "flufl.lock==10.0.0";

/// The filelock releases `scenarios/filelock.race` runs through the gate: 3.20.3 (keeps the
/// lock file), 3.20.4 (first to unlink it on release, with the fstat nlink check), 3.29.4 (the
/// last that unlinks) and 3.29.5 (keeps it again: tox-dev/filelock PR #577).
pub const FILELOCK_VERSIONS: &[&str] = &["3.20.3", "3.20.4", "3.29.4", "3.29.5"];

/// The npm releases the Node drivers run through the gate: lockfile 0.4.2 (npm/lockfile#4: two
/// waiters both remove a stale lock), 0.4.3 (the fix: a `.STALE` lock around the removal) and
/// 1.0.4 (the last release, for its `lockSync`) for `scenarios/npm-lockfile.race`;
/// proper-lockfile 4.1.2 (its #121, open) for `scenarios/proper-lockfile.race`.
pub const NPM_PACKAGES: &[(&str, &str)] = &[
    ("lockfile", "0.4.2"),
    ("lockfile", "0.4.3"),
    ("lockfile", "1.0.4"),
    ("proper-lockfile", "4.1.2"),
];

/// Installs each npm release into `$venv/npm/NAME@VERSION`. As for filelock, a release that
/// cannot be installed (no npm on this machine, no registry) leaves `NAME@VERSION.missing` with
/// the reason, which the driver prints before its first gated call: an error row, never a pass.
fn ensure_npm(venv: &Path) -> Result<(), String> {
    let base = venv.join("npm");
    std::fs::create_dir_all(&base).map_err(|e| format!("mkdir {}: {e}", base.display()))?;
    for (name, v) in NPM_PACKAGES {
        let dir = base.join(format!("{name}@{v}"));
        let missing = base.join(format!("{name}@{v}.missing"));
        if dir.join("node_modules").join(name).join("package.json").exists() {
            continue;
        }
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--no-save", "--prefix"])
            .arg(&dir)
            .arg(format!("{name}@{v}"))
            .output();
        let why = match out {
            Ok(out) if out.status.success() && dir.join("node_modules").join(name).join("package.json").exists() => None,
            Ok(out) => Some(format!(
                "npm install {name}@{v} failed ({}): {}\n",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Some(format!(
                "npm install {name}@{v}: cannot run npm: {e} (Debian: apt-get install nodejs npm)\n"
            )),
        };
        match why {
            None => {
                let _ = std::fs::remove_file(&missing);
            }
            Some(why) => {
                std::fs::write(&missing, why).map_err(|e| format!("{}: {e}", missing.display()))?
            }
        }
    }
    Ok(())
}

/// Installs each filelock release into `$venv/filelock/VERSION`. A release that cannot be
/// installed is not an error here: `VERSION.missing` says why, and the driver prints that and
/// fails before its first gated call, so its gate rows are errors with the reason, never passes.
fn ensure_filelock(venv: &Path) -> Result<(), String> {
    let base = venv.join("filelock");
    std::fs::create_dir_all(&base).map_err(|e| format!("mkdir {}: {e}", base.display()))?;
    for v in FILELOCK_VERSIONS {
        let dir = base.join(v);
        let missing = base.join(format!("{v}.missing"));
        if dir.join("filelock/_unix.py").exists() {
            continue;
        }
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--target",
            ])
            .arg(&dir)
            .arg(format!("filelock=={v}"))
            .output()
            .map_err(|e| format!("pip install filelock=={v}: {e}"))?;
        if out.status.success() && dir.join("filelock/_unix.py").exists() {
            let _ = std::fs::remove_file(&missing);
        } else {
            let why = format!(
                "pip install filelock=={v} failed ({}): {}\n",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            std::fs::write(&missing, why).map_err(|e| format!("{}: {e}", missing.display()))?;
        }
    }
    Ok(())
}

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
        ensure_filelock(&venv)?;
        ensure_npm(&venv)?;
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
        ensure_filelock(&venv)?;
        ensure_npm(&venv)?;
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
