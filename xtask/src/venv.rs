//! `cargo xtask venv`: the Python environment the gated drivers run in (scenarios/drivers/):
//! a venv under target/ with flufl.lock pinned to the version `scenarios/flufl-lock.race`
//! models, each release of filelock, portalocker and conda that `scenarios/filelock.race`,
//! `portalocker.race` and `conda-lock.race` model in a directory of its own
//! (`$RACELAB_VENV/PACKAGE/VERSION`, put on sys.path by the driver: one site-packages holds one
//! version), and the npm packages the Node drivers load, each release in a prefix of its own
//! (`$RACELAB_VENV/npm/NAME@VERSION/node_modules/NAME`). Made once and kept; checked on every
//! use.

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
/// proper-lockfile 4.1.2 (its #121, open, and #71) for `scenarios/proper-lockfile.race` and
/// `proper-lockfile-stall.race`.
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
        if dir
            .join("node_modules")
            .join(name)
            .join("package.json")
            .exists()
        {
            continue;
        }
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new("npm")
            .args([
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--prefix",
            ])
            .arg(&dir)
            .arg(format!("{name}@{v}"))
            .output();
        let why = match out {
            Ok(out)
                if out.status.success()
                    && dir
                        .join("node_modules")
                        .join(name)
                        .join("package.json")
                        .exists() =>
            {
                None
            }
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

/// The portalocker releases `scenarios/portalocker.race` runs: 3.2.0 (the last 3.x, whose
/// TemporaryFileLock unlocks before it unlinks and unlinks from atexit) and 4.0.0 (the fix of
/// wolph/portalocker #115).
pub const PORTALOCKER_VERSIONS: &[&str] = &["3.2.0", "4.0.0"];

/// The conda releases `scenarios/conda-lock.race` runs: 4.1.6 (glob, then mkdir of a pid
/// directory) and 4.2.7 (glob, then a pid file). Both are sdists; 4.2.7's setup.py imports
/// auxlib, so they build without isolation, beside [`CONDA_BUILD_DEPS`]. 4.3.16 (the last
/// conda on PyPI; conda 4.3 took no package-cache lock) does not build on Python 3.11 (its
/// setup.py needs `collections.Iterable`, gone since 3.10): it stays listed so that the venv
/// tries it and writes `4.3.16.missing` with pip's error, and its gate rows are skipped with
/// that reason (about 1.6 s per venv check while it cannot build).
pub const CONDA_VERSIONS: &[&str] = &["4.1.6", "4.2.7", "4.3.16"];

/// Installed into the venv for conda: what its old setup.py files import while pip builds them
/// (auxlib, setuptools, wheel), and what 4.2.7's lock imports when it lets go
/// (`conda.common.disk.rm_rf` imports conda.utils, which imports requests), pinned.
pub const CONDA_BUILD_DEPS: &[&str] = &[
    "auxlib==0.0.43",
    "setuptools==65.5.0",
    "wheel==0.48.0",
    "requests==2.34.2",
];

/// One library whose releases each get a directory `$venv/PACKAGE/VERSION` (one site-packages
/// holds one version; the driver puts the one it runs on sys.path).
struct Releases {
    package: &'static str,
    versions: &'static [&'static str],
    /// A file every installed release has, relative to its directory.
    proof: &'static str,
    /// Installed into the venv first (with their dependencies); the releases are then built
    /// without isolation, against them.
    build_deps: &'static [&'static str],
}

const RELEASES: &[Releases] = &[
    Releases {
        package: "filelock",
        versions: FILELOCK_VERSIONS,
        proof: "filelock/_unix.py",
        build_deps: &[],
    },
    Releases {
        package: "portalocker",
        versions: PORTALOCKER_VERSIONS,
        proof: "portalocker/utils.py",
        build_deps: &[],
    },
    Releases {
        package: "conda",
        versions: CONDA_VERSIONS,
        proof: "conda/lock.py",
        build_deps: CONDA_BUILD_DEPS,
    },
];

/// Installs each release of each library into `$venv/PACKAGE/VERSION`. A release that cannot
/// be installed is not an error here: `VERSION.missing` says why, and the driver prints that
/// and fails before its first gated call, so its gate rows are errors with the reason, never
/// passes.
fn ensure_releases(venv: &Path) -> Result<(), String> {
    for lib in RELEASES {
        let base = venv.join(lib.package);
        std::fs::create_dir_all(&base).map_err(|e| format!("mkdir {}: {e}", base.display()))?;
        let mut deps_ready = lib.build_deps.is_empty();
        for v in lib.versions {
            let dir = base.join(v);
            let missing = base.join(format!("{v}.missing"));
            if dir.join(lib.proof).exists() {
                continue;
            }
            let _ = std::fs::remove_dir_all(&dir);
            let spec = format!("{}=={v}", lib.package);
            let mut why = None;
            if !deps_ready {
                let out = Command::new(venv.join("bin/pip"))
                    .args(["install", "--quiet", "--disable-pip-version-check"])
                    .args(lib.build_deps)
                    .output()
                    .map_err(|e| format!("pip install {}: {e}", lib.build_deps.join(" ")))?;
                if out.status.success() {
                    deps_ready = true;
                } else {
                    why = Some(format!(
                        "pip install {} (to build {spec}) failed ({}): {}\n",
                        lib.build_deps.join(" "),
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
            }
            if why.is_none() {
                let mut pip = Command::new(venv.join("bin/pip"));
                pip.args([
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--no-deps",
                ]);
                if !lib.build_deps.is_empty() {
                    pip.arg("--no-build-isolation");
                }
                let out = pip
                    .arg("--target")
                    .arg(&dir)
                    .arg(&spec)
                    .output()
                    .map_err(|e| format!("pip install {spec}: {e}"))?;
                if !(out.status.success() && dir.join(lib.proof).exists()) {
                    why = Some(format!(
                        "pip install {spec} failed ({}): {}\n",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
            }
            match why {
                None => {
                    let _ = std::fs::remove_file(&missing);
                }
                Some(why) => std::fs::write(&missing, why)
                    .map_err(|e| format!("{}: {e}", missing.display()))?,
            }
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
        ensure_releases(&venv)?;
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
        ensure_releases(&venv)?;
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
