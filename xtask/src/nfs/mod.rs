//! Real kernel NFS on a machine whose kernel has none: a guest (User-mode Linux, else qemu) with a kernel nfsd and three NFS client mounts, running one command.
//!
//! racelab's lock scenarios are about NFS, and the machines it runs on (CI containers, this
//! one) have no NFS in their kernel. So [`run`] boots a Linux guest on the host's own root
//! filesystem: programs in the guest are the host's binaries, reading and writing the host's
//! files, while the guest kernel's nfsd exports a guest tmpfs and the guest kernel's NFS client
//! mounts it back over loopback, three times. The guest is the first of these that boots,
//! tried in order (each failure's console line is kept for the report):
//!
//! 1. [`uml`]: User-mode Linux 7.2 (Debian unstable's package, with trixie's glibc) in
//!    `seccomp=on` mode, the host's root through hostfs: about 2 s per run. It boots whatever
//!    the host CPU's FP-state size (Debian 12's UML 6.1 panics on AVX-512/AMX hosts).
//! 2. [`qemu`]: Debian 12's kernel in qemu with TCG and one vCPU, the host's root over 9p.
//!    Slower (17-25 s to boot on a loaded two-core host, NFS operations about 10x slower)
//!    but independent of the CPU.
//!
//! If none boots, the run fails with [`Error::NoGuest`] naming each attempt's failing line.
//! `RACELAB_NFS_FAIL=uml` (a comma list of guest names) makes those attempts fail on purpose
//! at their init's first step, to exercise the fallback.
//!
//! The mounts:
//!
//! | mount          | what                                                              |
//! |----------------|-------------------------------------------------------------------|
//! | `$RIG/nfs4`    | NFSv4.2                                                           |
//! | `$RIG/nfs3`    | NFSv3 (client A)                                                  |
//! | `$RIG/nfs3b`   | NFSv3 with `nosharecache`: client B, with its own attribute cache |
//! | `$RIG/nfs4b`   | NFSv4.2 with `nosharecache`: a second NFSv4.2 client (B), its own |
//! |                | client ID at the server (other address, own UTS node name)        |
//!
//! All four show the same directory `racelab/` of the one export ([`Mounts`]). The command
//! runs there with the caller's environment and working directory plus `RACELAB_NFS4`,
//! `RACELAB_NFS3`, `RACELAB_NFS3B` and `RACELAB_NFS4B`, its output streams to the host's stdout, and its exit
//! status comes back (`cargo xtask nfs run -- sh -c 'exit 7'` exits 7).
//!
//! Architecture invariant: **no mount is ever made on the host.** Every mount lives in the
//! guest kernel and vanishes with it; the host only sees the rig directory's plain files. The
//! guest's `/` is the host's `/` read-write, so the init script ([`guest`]) puts guest-private
//! tmpfs over `/run` and `/var/lib/nfs` and a bind over `/etc/exports`: the host's NFS
//! configuration is never written.
//!
//! The rig directory (default [`DEFAULT_RIG`]) caches what the guests need (`uml72/`, `apt/`,
//! `qemu/`) so later runs boot in seconds; everything else in it (the init script, the command
//! file, the export and mount-point directories, UML's umid directory) is runtime state, removed
//! when the run ends — normally, on failure, and on Ctrl-C/SIGTERM, which kill the guest's
//! process group — and by a watchdog ([`reaper`]) when this process is killed outright. A `lock`
//! file serialises runs on one rig.
//!
//! Measured on an AVX-512/AMX host with kernel 6.18 (two cores, noisy): UML 7.2, first run on a
//! fresh rig (apt lists, download, unpack, boot) about 15 s; cached, `nfs run -- true` about 2 s.

mod cpio;
mod guest;
mod machine;
mod qemu;
mod reaper;
mod setup;
mod uml;

pub mod cli;
pub mod suite;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use guest::{Ended, Run};

/// Where `cargo xtask nfs run` keeps its rig unless `--rig` says otherwise.
pub const DEFAULT_RIG: &str = "/tmp/racelab-nfs";

/// Everything that can stop a run before the command's own status is known.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`cargo xtask nfs run` needs root: it installs Debian packages (nfs-kernel-server, kmod, patchelf, qemu-system-x86), unpacks a guest kernel and boots a guest that runs nfsd and mounts NFS; run it as root (e.g. with sudo)")]
    NotRoot,
    #[error("rig {0}: {1}")]
    BadRig(PathBuf, String),
    #[error("setting up the NFS rig failed: {0}")]
    Setup(String),
    /// The guest stopped while the command was running; `console` is what it printed.
    #[error("{what}\n--- guest console (last lines) ---\n{console}\n--- end of guest console ---")]
    Guest { what: String, console: String },
    /// One guest did not get as far as running the command (the next one is tried).
    #[error("{what}\n--- guest console (last lines) ---\n{console}\n--- end of guest console ---")]
    Boot {
        failing_line: String,
        what: String,
        console: String,
    },
    #[error("{0}")]
    Io(String),
    /// No guest booted on this host: each attempt's name and the line that says why it failed.
    #[error("no NFS guest could boot on this host ({}):{}", host(), .0.iter().map(|(name, line)| format!("\n  {name}: {line}")).collect::<String>())]
    NoGuest(Vec<(String, String)>),
}

/// The host's kernel and CPU traits that decide which guest boots, for messages.
fn host() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: Vec<&str> = ["avx512f", "amx_tile"]
        .into_iter()
        .filter(|f| cpuinfo.split_whitespace().any(|w| w == *f))
        .collect();
    format!(
        "kernel {}, CPU {}",
        release.trim(),
        if flags.is_empty() {
            "without AVX-512/AMX".to_string()
        } else {
            format!("with {}", flags.join(", "))
        }
    )
}

/// The guests, in the order they are tried.
pub const GUESTS: &[&str] = &["uml", "qemu"];

/// The same export seen through each client: the directories a command (or racelab's `--real`
/// targets) should use. They exist only inside the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounts {
    /// `RACELAB_NFS4`: through the NFSv4.2 client.
    pub nfs4: PathBuf,
    /// `RACELAB_NFS3`: through the first NFSv3 client (A).
    pub nfs3: PathBuf,
    /// `RACELAB_NFS3B`: the same directory through the second NFSv3 client (B, `nosharecache`).
    pub nfs3b: PathBuf,
    /// `RACELAB_NFS4B`: the same directory through a second NFSv4.2 client (B, `nosharecache`).
    pub nfs4b: PathBuf,
}

/// How to run a command in the guest.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The rig directory: the cached guest kernels and the run's runtime files (`--rig`).
    pub rig: PathBuf,
    /// The command's working directory inside the guest (the same path as on the host).
    pub cwd: PathBuf,
    /// How long the guest may take from start to the mounts being up before the run is
    /// abandoned as a failed boot (cached boots take seconds; a first one also unpacks modules).
    pub boot_timeout: Duration,
    /// Guest memory (UML's `mem=`, qemu's `-m`).
    pub memory: String,
    /// Where the command's output goes: standard output when None, else appended to this file
    /// (the NFS part of run-scenarios runs beside the main suite and keeps the two apart).
    pub output: Option<PathBuf>,
    /// Set by whoever started the run to stop it early, as a SIGTERM would (the main suite of
    /// run-scenarios found bad input while the guest was running).
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Options {
    /// The default rig, the current directory, a 3-minute boot limit, 1 GiB of guest memory.
    pub fn new() -> Self {
        Options {
            rig: PathBuf::from(DEFAULT_RIG),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            boot_timeout: Duration::from_secs(180),
            memory: "1G".into(),
            output: None,
            cancel: None,
        }
    }

    /// The signal that asks the run to stop: a pending Ctrl-C or SIGTERM, or SIGTERM when the
    /// run was cancelled.
    pub fn stop_requested(&self) -> Option<i32> {
        crate::signals::pending().or_else(|| {
            self.cancel
                .as_ref()
                .is_some_and(|c| c.load(Ordering::Relaxed))
                .then_some(nix::sys::signal::Signal::SIGTERM as i32)
        })
    }

    /// The directories the command will see (they exist only inside the guest).
    pub fn mounts(&self) -> Mounts {
        Mounts {
            nfs4: self.rig.join("nfs4/racelab"),
            nfs3: self.rig.join("nfs3/racelab"),
            nfs3b: self.rig.join("nfs3b/racelab"),
            nfs4b: self.rig.join("nfs4b/racelab"),
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self::new()
    }
}

/// Sets the rig up (installing what is missing), boots the guest, runs `argv` inside and tears
/// everything down again. The guest's console output (the mounts, then the command's stdout and
/// stderr) is streamed to this process's stdout as it comes; progress of the set-up goes to stderr.
///
/// Polls [`crate::signals`] (installing its handlers): on Ctrl-C/SIGTERM the guest is killed,
/// the runtime files are removed and [`Ended::Interrupted`] is returned.
pub fn run(opts: &Options, argv: &[OsString]) -> Result<Run, Error> {
    run_adapted(opts, &|_| argv.to_vec())
}

/// [`run`] with a command that depends on the guest that boots (its [`GUESTS`] name): a
/// slower guest can be given a smaller workload.
pub fn run_adapted(
    opts: &Options,
    command_for: &dyn Fn(&str) -> Vec<OsString>,
) -> Result<Run, Error> {
    let argv = command_for(GUESTS[0]);
    if !nix::unistd::Uid::effective().is_root() {
        return Err(Error::NotRoot);
    }
    if argv.is_empty() {
        return Err(Error::Io(
            "no command to run in the guest; pass one after `--`".into(),
        ));
    }
    crate::signals::install().map_err(|e| Error::Io(e.to_string()))?;
    let rig = setup::Rig::open(&opts.rig)?;
    let lock = rig.lock()?;
    if let Some(sig) = opts.stop_requested() {
        return Ok(Run::interrupted(sig));
    }
    let (files, dirs) = guest::Runtime::paths(&rig.dir);
    let watch = lock
        .try_clone()
        .map_err(|e| Error::Io(format!("duplicating the rig's lock: {e}")))?;
    let mut reaper = reaper::Reaper::start(watch, &files, &dirs)?;
    rig.drop_stale_cache();
    rig.ensure_host_tools()?;
    let forced = forced_failures()?;
    let mut attempts: Vec<(String, String)> = Vec::new();
    for name in GUESTS {
        if let Some(sig) = opts.stop_requested() {
            return Ok(Run::interrupted(sig));
        }
        let machine = match *name {
            "uml" => uml::machine(&rig, &opts.memory),
            _ => qemu::machine(&rig, &opts.memory),
        };
        let machine = match machine {
            Ok(m) => m,
            Err(e) => {
                eprintln!("nfs: {name}: could not set it up: {e}");
                attempts.push((
                    (*name).to_string(),
                    format!("set-up: {}", first_line(&e.to_string())),
                ));
                continue;
            }
        };
        let argv = command_for(name);
        match guest::boot_and_run(
            &rig,
            &machine,
            opts,
            &argv,
            forced.contains(name),
            &mut reaper,
        ) {
            Err(Error::Boot {
                failing_line,
                console,
                ..
            }) => {
                eprintln!("nfs: {} did not boot: {failing_line}", machine.title);
                if !console.is_empty() {
                    eprintln!(
                        "--- its console (last lines) ---\n{console}\n--- end of its console ---"
                    );
                }
                attempts.push((format!("{name} ({})", machine.title), failing_line));
            }
            other => {
                drop(reaper);
                drop(lock);
                return other;
            }
        }
    }
    drop(reaper);
    drop(lock);
    Err(Error::NoGuest(attempts))
}

/// `RACELAB_NFS_FAIL`: the guests to make fail on purpose (a comma list of [`GUESTS`] names).
fn forced_failures() -> Result<Vec<&'static str>, Error> {
    let Ok(list) = std::env::var("RACELAB_NFS_FAIL") else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match GUESTS.iter().find(|g| **g == word) {
            Some(g) => out.push(*g),
            None => {
                return Err(Error::Io(format!(
                    "RACELAB_NFS_FAIL={list}: unknown guest `{word}`; the guests are {}",
                    GUESTS.join(", ")
                )))
            }
        }
    }
    Ok(out)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}

/// Host processes of a guest booted from `rig` (their pids): User-mode Linux's (its binary is in
/// the rig), qemu's (its kernel command line names the rig's init), and the clean-up watchdog.
/// Tests use it to check that nothing is left behind.
pub fn guest_processes(rig: &std::path::Path) -> Vec<String> {
    let rig = rig.display();
    let uml = format!("{rig}/uml72/");
    let init = format!("racelab_init={rig}/init");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|p| {
            let exe = std::fs::read_link(p.path().join("exe"))
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default();
            let cmdline = String::from_utf8_lossy(
                &std::fs::read(p.path().join("cmdline")).unwrap_or_default(),
            )
            .into_owned();
            exe.starts_with(&uml)
                || (exe.contains("qemu-system") && cmdline.contains(&init))
                || (cmdline.contains("racelab-nfs-reaper")
                    && cmdline.contains(&format!("{rig}/init\0")))
        })
        .map(|p| p.file_name().to_string_lossy().into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn no_guest_names_each_attempt_on_its_own_line() {
        let e = Error::NoGuest(vec![
            (
                "uml (User-mode Linux 7.2.7)".into(),
                "ptrace set fp regs failed, errno = 14".into(),
            ),
            (
                "qemu (Linux 6.1)".into(),
                "racelab-nfs-setup-failed: mount nfsd".into(),
            ),
        ]);
        let text = e.to_string();
        assert!(
            text.starts_with("no NFS guest could boot on this host (kernel "),
            "{text}"
        );
        assert!(text.contains("\n  uml (User-mode Linux 7.2.7): ptrace set fp regs failed, errno = 14\n  qemu (Linux 6.1): racelab-nfs-setup-failed: mount nfsd"), "{text}");
    }
}
