//! The hidden commands racelab runs itself: the gate's launcher and its benchmark and LinkLock
//! programs, and the real backends' worker process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::output::{eprint_error, BAD_INPUT};

#[derive(clap::Args)]
pub(crate) struct GateExecArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    argv: Vec<String>,
}

/// `racelab __gate-exec ARGV...`: starts a program under the gate, traced, with its seccomp filter.
pub(crate) fn gate_exec(args: &GateExecArgs) -> u8 {
    racelab_real::gate::launch::gate_exec(&args.argv).clamp(0, 255) as u8
}

#[derive(clap::Args)]
pub(crate) struct WorkerArgs {
    root: PathBuf,
    parent: u32,
}

/// `racelab __worker ROOT PARENT`: performs one actor's operations for a real backend.
pub(crate) fn worker(args: &WorkerArgs) -> u8 {
    racelab_real::backend::process::worker_main(&args.root, args.parent).clamp(0, 255) as u8
}

#[derive(clap::Args)]
pub(crate) struct GateBenchArgs {
    file: PathBuf,
    calls: u64,
}

/// `racelab __gate-bench FILE CALLS`: a program whose every call is a gated step.
pub(crate) fn gate_bench(args: &GateBenchArgs) -> u8 {
    let (file, calls) = (args.file.as_path(), args.calls);
    if let Err(e) = std::fs::write(file, b"bench") {
        eprint_error(format_args!("{}: {e}", file.display()));
        return 1;
    }
    let now = nix::sys::time::TimeSpec::new(1_100_000_000, 0);
    for i in 0..calls {
        let r = if i % 2 == 0 {
            nix::sys::stat::stat(file).map(|_| ())
        } else {
            nix::sys::stat::utimensat(
                nix::fcntl::AT_FDCWD,
                file,
                &now,
                &now,
                nix::sys::stat::UtimensatFlags::FollowSymlink,
            )
        };
        if let Err(e) = r {
            eprint_error(format_args!("{}: {e}", file.display()));
            return 1;
        }
    }
    0
}

#[derive(clap::Args)]
pub(crate) struct GateLinkLockArgs {
    lockfile: PathBuf,
    counter: PathBuf,
    work_ms: u64,
}

/// `racelab __gate-linklock`, from its arguments.
pub(crate) fn gate_linklock(args: &GateLinkLockArgs) -> u8 {
    linklock_driver(&args.lockfile, &args.counter, args.work_ms)
}

/// `racelab __gate-linklock LOCKFILE COUNTER WORK_MS`: one locker of
/// `scenarios/racelab-linklock.race` with racelab's real LinkLock, for the gate (a Rust program
/// beside flufl.lock's Python). It follows the conventions of docs/language.md section 5.15:
/// paths are the scenario's, under `$RACELAB_ROOT`; the critical section is the file
/// `.racelab/critical/list/$RACELAB_ACTOR`; NotLocked on release is a line in `.racelab/logs/events`.
fn linklock_driver(lockfile: &Path, counter: &Path, work_ms: u64) -> u8 {
    use racelab_locks::{FileLock, LinkLock, LinkOptions};
    use std::io::Write;
    let (Ok(root), Ok(me)) = (
        std::env::var("RACELAB_ROOT"),
        std::env::var("RACELAB_ACTOR"),
    ) else {
        eprintln!(
            "error: __gate-linklock runs under the gate, which sets RACELAB_ROOT and RACELAB_ACTOR"
        );
        return BAD_INPUT;
    };
    let under = |p: &Path| PathBuf::from(format!("{root}{}", p.display()));
    let log = |name: &str, line: &str| {
        let path = format!("{root}/.racelab/logs/{name}");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    };
    let marker = PathBuf::from(format!("{root}/.racelab/critical/list/{me}"));
    let mut lock = match LinkLock::new(&under(lockfile), LinkOptions::default()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if let Err(e) = lock.acquire(None) {
        eprintln!("error: acquire: {e}");
        return 1;
    }
    let step = || -> std::io::Result<()> {
        std::fs::write(&marker, b"")?;
        let n: u64 = match std::fs::read_to_string(under(counter)) {
            Ok(s) => s.trim().parse().unwrap_or(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        std::thread::sleep(Duration::from_millis(work_ms));
        std::fs::write(under(counter), (n + 1).to_string())?;
        log("done", &me);
        std::fs::remove_file(&marker)
    };
    if let Err(e) = step() {
        eprintln!("error: in the critical section: {e}");
        return 1;
    }
    match lock.release() {
        Ok(()) => 0,
        Err(e) => {
            log("events", &format!("{me}: NotLockedError"));
            eprintln!("error: release: {e}");
            1
        }
    }
}
