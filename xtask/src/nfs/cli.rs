//! `cargo xtask nfs run [--rig DIR] -- COMMAND...`: the command line over [`super::run`], with its exit codes.

use std::ffi::OsString;
use std::path::PathBuf;

use super::{Ended, Error, Options, DEFAULT_RIG};

pub const HELP: &str = "usage: cargo xtask nfs run [--rig DIR] -- COMMAND [ARGS...]
       cargo xtask nfs suite [--racelab BIN] [--rig DIR] [--findings-from MODEL_JSON]
                             (run-scenarios' NFS part again)

Runs COMMAND inside a Linux guest booted on this machine's own root filesystem, with real
kernel NFS: the guest's nfsd exports a tmpfs and the guest's NFS client mounts it back three
times. The guest is the first of these that boots on this host:

  uml    User-mode Linux 7.2 (Debian unstable's user-mode-linux, fetched through a private apt
         configuration, run with trixie's glibc) in seccomp mode, host root through hostfs
  qemu   Debian 12's kernel in qemu with TCG (one vCPU, no KVM), host root over 9p

COMMAND sees the host's files and runs in the current directory with the caller's environment
plus:

  RACELAB_NFS4=DIR/nfs4/racelab    through an NFSv4.2 mount
  RACELAB_NFS3=DIR/nfs3/racelab    through an NFSv3 mount (client A)
  RACELAB_NFS3B=DIR/nfs3b/racelab  the same directory through a second NFSv3 client
                                   (nosharecache: its own attribute cache)
  RACELAB_NFS4B=DIR/nfs4b/racelab  the same directory through a second NFSv4.2 client

The mounts exist only inside the guest; nothing is ever mounted on the host. The guest's
console (its NFS mount lines, then COMMAND's stdout and stderr) is streamed to stdout.

Needs root. Installs what is missing with apt-get (nfs-kernel-server, kmod, iproute2, patchelf;
qemu-system-x86 when the fallback is needed) and keeps the guests' kernels in the rig as a
cache, so only the first run downloads them. Everything else the run puts in the rig is
removed when it ends, also on failure, on Ctrl-C/SIGTERM, and (by a watchdog) on SIGKILL.

environment:
  RACELAB_NFS_FAIL=uml[,qemu]   make these guests fail on purpose (tests the fallback)

options:
  --rig DIR   the rig directory (default /tmp/racelab-nfs); one run at a time per rig

exit status: COMMAND's own; 3 when no guest could run it (not root, set-up failed, or no
guest booted: the error names each attempt's failing line); 128+N when stopped by signal N.
";

/// `cargo xtask nfs suite [--racelab BIN] [--rig DIR] [--findings-from FILE]`: the NFS part of
/// run-scenarios again, against the main summary a run-scenarios left in `target/racelab` (its
/// NFS rows replaced), for working on the NFS part without the whole run. `--findings-from`
/// forces the model rows of that file (the main suite's `model.json`), as run-scenarios does,
/// instead of exploring on the host first: the part's time is then the guest's alone.
fn suite(args: &[String]) -> u8 {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = here.parent().map_or(here.clone(), PathBuf::from);
    let target = root.join("target");
    let mut p = super::suite::Params::new(target.join("debug/racelab"), root.clone(), &target);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--racelab", Some(bin)) => p.racelab = root.join(bin),
            ("--rig", Some(dir)) => p.rig = root.join(dir),
            ("--findings-from", Some(file)) => {
                let file = root.join(file);
                if !file.is_file() {
                    eprintln!("error: --findings-from {}: no such file (a racelab suite's model.json or summary.json)", file.display());
                    return 2;
                }
                p.main_model = Some(super::suite::MainModel::finished(file));
            }
            _ => {
                eprintln!("error: `{a}`: usage: cargo xtask nfs suite [--racelab BIN] [--rig DIR] [--findings-from MODEL_JSON]\n(reruns the NFS part against target/racelab/summary.json from a run-scenarios)");
                return 2;
            }
        }
    }
    if !p.racelab.is_file() {
        eprintln!(
            "error: no racelab binary at {}; build it (cargo build -p racelab) or pass --racelab",
            p.racelab.display()
        );
        return 2;
    }
    p.venv = crate::venv::ensure(&target).map_err(|e| e.to_string());
    match super::suite::run(&p) {
        Ok(Some(code)) => code,
        Ok(None) => {
            eprintln!(
                "error: nothing to rerun: {} holds no real rows of the lock scenarios (run cargo xtask run-scenarios first)",
                p.summary_dir.join("summary.json").display()
            );
            2
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            3
        }
    }
}

/// Returns the process exit code.
pub fn run(args: &[String]) -> u8 {
    match args.first().map(String::as_str) {
        Some("run") => {}
        Some("suite") => return suite(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{HELP}");
            return 0;
        }
        Some(other) => {
            eprintln!("error: unknown nfs subcommand `{other}`\n\n{HELP}");
            return 2;
        }
        None => {
            eprint!("{HELP}");
            return 2;
        }
    }
    let mut opts = Options::new();
    let mut argv: Vec<OsString> = Vec::new();
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--" => {
                argv.extend(it.by_ref().map(OsString::from));
                break;
            }
            "--rig" => match it.next() {
                Some(d) => opts.rig = PathBuf::from(d),
                None => {
                    eprintln!("error: --rig needs a directory, e.g. --rig {DEFAULT_RIG}");
                    return 2;
                }
            },
            "-h" | "--help" => {
                print!("{HELP}");
                return 0;
            }
            other if other.starts_with('-') => {
                eprintln!("error: unknown option `{other}` for `nfs run`; put the command after `--`\n\n{HELP}");
                return 2;
            }
            // No `--`: the rest is the command.
            _ => {
                argv.push(OsString::from(a));
                argv.extend(it.by_ref().map(OsString::from));
                break;
            }
        }
    }
    if argv.is_empty() {
        eprintln!("error: no command; usage: cargo xtask nfs run [--rig DIR] -- COMMAND [ARGS...]");
        return 2;
    }
    if opts.rig.is_relative() {
        opts.rig = opts.cwd.join(&opts.rig);
    }
    match super::run(&opts, &argv) {
        Ok(run) => match run.ended {
            Ended::Exited(n) => u8::try_from(n).unwrap_or(1),
            Ended::Interrupted(sig) => crate::signals::exit_code(sig),
        },
        Err(e @ Error::NotRoot) => {
            eprintln!("error: {e}");
            3
        }
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(sig) = crate::signals::pending() {
                return crate::signals::exit_code(sig);
            }
            3
        }
    }
}
