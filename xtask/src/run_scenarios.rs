//! `cargo xtask run-scenarios`: build racelab in release mode and run the built-in suite, on the
//! model engines and on every real filesystem this machine can provide.
//!
//! Real filesystems: always a local temp directory; as root, also the filesystem matrix
//! (tmpfs, ext4, xfs, btrfs, overlayfs), brought up for the run and torn down after it — also
//! on Ctrl-C or when the suite fails. A filesystem that cannot come up is passed to the suite as
//! skipped, with the reason, so it shows in the report instead of silently missing.

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xtask::db_servers;
use xtask::fs_matrix::{Matrix, Options};
use xtask::signals;

/// Returns racelab's exit code (DESIGN.md: 0 met, 1 an expectation failed, 2 bad input, 3 infrastructure).
pub fn run(args: &[String]) -> Result<u8> {
    let mut quick = false;
    let mut real = true;
    let mut nfs = true;
    let mut engines: Option<String> = None;
    let mut racelab: Option<PathBuf> = None;
    let mut scenarios: Option<PathBuf> = None;
    let mut shard: Option<String> = None;
    let mut it = args.iter();
    let usage = "options: --quick, --engines E1,E2, --model-only, --no-nfs, --shard I/N, --scenarios PATH, --racelab BINARY";
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--model-only" => real = false,
            // The NFS part boots a guest (User-mode Linux, else qemu) and takes minutes; this leaves it out.
            "--no-nfs" => nfs = false,
            // One machine's part of a CI job matrix; `racelab merge` combines the summaries.
            "--shard" => {
                shard = Some(
                    it.next()
                        .context("--shard needs I/N, e.g. --shard 1/2")?
                        .clone(),
                )
            }
            "--engines" => {
                engines = Some(
                    it.next()
                        .context("--engines needs a value, e.g. --engines shuttle-random,loom")?
                        .clone(),
                )
            }
            // For tests: run an already built racelab, on some scenarios only.
            "--racelab" => {
                let given = PathBuf::from(
                    it.next()
                        .context("--racelab needs the path of a racelab binary")?,
                );
                // Absolute: the NFS guest and the suite run it from other directories.
                let path = std::fs::canonicalize(&given).with_context(|| format!("--racelab {}: no such binary; build it first (e.g. cargo build --profile ci -p racelab)", given.display()))?;
                racelab = Some(path);
            }
            "--scenarios" => {
                scenarios = Some(PathBuf::from(
                    it.next()
                        .context("--scenarios needs a file or directory of *.race files")?,
                ))
            }
            other => bail!("unknown option `{other}` for run-scenarios; {usage}"),
        }
    }
    let root = crate::root();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let racelab = match racelab {
        Some(r) => r,
        None => {
            // Exploration is CPU-bound: a debug build would explore ~20x fewer schedules in the same budget.
            let status = Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--release",
                    "--quiet",
                    "--package",
                    "racelab",
                    "--bin",
                    "racelab",
                ])
                .current_dir(&root)
                .status()
                .context("running cargo build")?;
            if !status.success() {
                bail!("building racelab failed");
            }
            target.join("release").join("racelab")
        }
    };
    let scenarios = scenarios.unwrap_or_else(|| root.join("scenarios"));
    let mut cmd = Command::new(&racelab);
    cmd.current_dir(&root)
        .arg("suite")
        .arg(&scenarios)
        .arg("--out")
        .arg(target.join("racelab"));
    if quick {
        cmd.arg("--quick");
    }
    if let Some(e) = &engines {
        cmd.arg("--engines").arg(e);
    }
    if let Some(s) = &shard {
        cmd.arg("--shard").arg(s);
    }

    // Held until the suite is done; dropping them removes the temp dir and tears the matrix down.
    let mut temp = None;
    let mut matrix = None;
    if real {
        signals::install()?;
        let dir = tempfile::Builder::new()
            .prefix("racelab-tempdir-")
            .tempdir()
            .context("creating a temp directory for the real runs")?;
        cmd.arg(format!("--real=tempdir={}", dir.path().display()));
        temp = Some(dir);
        match bring_up_matrix() {
            Ok(m) => {
                println!(
                    "filesystem matrix up at {} in {:.2}s",
                    m.root().display(),
                    m.up_seconds()
                );
                for e in m.entries() {
                    match &e.skipped {
                        None => cmd.arg(format!("--real={}={}", e.name, e.dir.display())),
                        Some(why) => {
                            cmd.arg(format!("--real={}=!{}", e.name, why.replace('\n', " ")))
                        }
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
    // The gate: the scenarios' real programs (flufl.lock under its driver) in a temp directory,
    // their Python packages in the venv `cargo xtask venv` makes.
    let venv = if real {
        xtask::venv::ensure(&target)
    } else {
        Err("no real runs".into())
    };
    if real {
        let dir = temp
            .as_ref()
            .map(|d| d.path().display().to_string())
            .unwrap_or_default();
        match &venv {
            Ok(venv) => {
                cmd.env("RACELAB_VENV", venv);
                cmd.arg(format!("--gate=tempdir={dir}"));
            }
            Err(why) => {
                cmd.arg(format!("--gate=tempdir=!{}", why.replace('\n', " ")));
            }
        }
    }
    // Real databases: SQLite always; PostgreSQL and MariaDB from `$RACELAB_*_URL` when set (an
    // existing server), else started here for the run and stopped after (also on Ctrl-C).
    let mut db_servers = None;
    if real {
        cmd.arg("--db=sqlite");
        let (servers, args) = bring_up_databases();
        for a in args {
            cmd.arg(a);
        }
        db_servers = servers;
    }
    let pg_url = cmd
        .get_args()
        .filter_map(|a| {
            a.to_str()?
                .strip_prefix("--db=postgres=")
                .map(str::to_string)
        })
        .find(|u| !u.starts_with('!'));
    // NFS: the lock scenarios again, inside a guest (User-mode Linux, else qemu), beside the
    // main suite; merged into its summary at the end (skipped rows with the reason when the
    // guest cannot come up).
    let mut nfs_params = xtask::nfs::suite::Params::new(racelab.clone(), root.clone(), &target);
    nfs_params.venv = venv;
    // With every engine and no shard, the main suite explores every variant the NFS part forces:
    // the part waits for those rows instead of exploring them a second time beside the suite.
    if engines.is_none() && shard.is_none() {
        nfs_params.main_model = Some(xtask::nfs::suite::MainModel::in_dir(
            &target.join("racelab"),
        ));
    }
    let nfs_scenarios = xtask::nfs::suite::scenarios_in(&scenarios);
    let nfs_part = (real && nfs && !nfs_scenarios.is_empty())
        .then(|| xtask::nfs::suite::start(&nfs_params, nfs_scenarios));
    let started = Instant::now();
    let status = run_child(&mut cmd, real)?;
    // Where the run's time went (CI's log shows it beside the NFS part's own steps).
    eprintln!(
        "run-scenarios: main suite ended after {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if let Some(main) = &nfs_params.main_model {
        main.ended.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    if status.code() == Some(2) {
        // Bad input: no summary to merge into; stop the guest instead of waiting for it.
        if let Some(part) = &nfs_part {
            part.cancel();
        }
    }
    // PostgreSQL's isolation suite on the same server, one row per spec merged into the summary,
    // timed against PostgreSQL's own isolationtester in the same run.
    let mut isolation_code = 0;
    if let (Some(url), None) = (&pg_url, signals::pending()) {
        let status = run_child(
            &mut crate::pg_isolation::command(&racelab, &root, &target, url),
            true,
        )?;
        isolation_code = status.code().map_or(3, |c| u8::try_from(c).unwrap_or(3));
    }
    // The same specs on the model database (no server needed): one `model` row per spec. One
    // shard runs it, so merged shards hold its rows once.
    let first_shard = shard.as_deref().is_none_or(|s| s.starts_with("1/"));
    if first_shard && signals::pending().is_none() {
        let status = run_child(
            &mut crate::pg_isolation::model_command(&racelab, &root, &target),
            true,
        )?;
        isolation_code =
            isolation_code.max(status.code().map_or(3, |c| u8::try_from(c).unwrap_or(3)));
    }
    eprintln!(
        "run-scenarios: isolation suites ended after {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if let Some(m) = matrix {
        let report = m
            .down()
            .map_err(|e| anyhow::anyhow!("tearing down the filesystem matrix: {e}"))?;
        if !report.is_clean() {
            eprintln!(
                "warning: the filesystem matrix did not tear down cleanly: {:?}",
                report.problems
            );
        }
    }
    if let Some(servers) = db_servers {
        if let Err(e) = servers.down() {
            eprintln!("warning: the database servers did not stop cleanly: {e}");
        }
    }
    drop(temp);
    let mut code = status
        .code()
        .map_or(3, |c| u8::try_from(c).unwrap_or(3))
        .max(isolation_code);
    if let Some(part) = nfs_part {
        if let Some(c) = xtask::nfs::suite::finish(&nfs_params, part)? {
            code = code.max(c);
        }
    }
    if let Some(sig) = signals::pending() {
        eprintln!(
            "interrupted by {}; the suite was stopped and everything real was cleaned up",
            signals::name(sig)
        );
        return Ok(signals::exit_code(sig));
    }
    Ok(code)
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
            let sig = nix::sys::signal::Signal::try_from(sig)
                .unwrap_or(nix::sys::signal::Signal::SIGTERM);
            let _ = nix::sys::signal::kill(pid, sig);
            forwarded = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `--db` arguments for PostgreSQL and MariaDB: a URL from the environment, or a server started
/// now (held until the suite is done), or `NAME=!reason` when neither is possible.
fn bring_up_databases() -> (Option<db_servers::Servers>, Vec<String>) {
    let mut args = Vec::new();
    let mut wanted = Vec::new();
    for kind in db_servers::Kind::ALL {
        match std::env::var(kind.url_var()) {
            Ok(url) if !url.is_empty() => args.push(format!("--db={}={url}", kind.name())),
            _ => wanted.push(kind),
        }
    }
    if wanted.is_empty() {
        return (None, args);
    }
    match db_servers::up(None, &wanted) {
        Ok(servers) => {
            for e in servers.entries() {
                match (&e.url, &e.skipped) {
                    (Some(url), _) => {
                        println!("{} up for the run: {url}", e.kind.name());
                        args.push(format!("--db={}={url}", e.kind.name()));
                    }
                    (None, why) => {
                        let why = why
                            .clone()
                            .unwrap_or_else(|| "did not start".into())
                            .replace('\n', " ");
                        println!("{} unavailable: {why}", e.kind.name());
                        args.push(format!("--db={}=!{why}", e.kind.name()));
                    }
                }
            }
            (Some(servers), args)
        }
        Err(why) => {
            println!("database servers unavailable: {why}");
            for kind in wanted {
                args.push(format!("--db={}=!{}", kind.name(), why.replace('\n', " ")));
            }
            (None, args)
        }
    }
}
