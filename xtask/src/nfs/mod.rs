//! Real kernel NFS on a machine whose kernel has none: a User-mode Linux guest with a kernel nfsd and three NFS client mounts, running one command.
//!
//! racelab's lock scenarios are about NFS, and the machines it runs on (CI containers, this
//! one) have no NFS in their kernel. User-mode Linux is a Linux kernel that runs as an ordinary
//! process (Debian's `user-mode-linux` package, no KVM), so [`run`] boots one on the host's own
//! root filesystem (hostfs): programs in the guest are the host's binaries, reading and writing
//! the host's files, while the guest kernel's nfsd exports a guest tmpfs and the guest kernel's
//! NFS client mounts it back over loopback, three times:
//!
//! | mount          | what                                                              |
//! |----------------|-------------------------------------------------------------------|
//! | `$RIG/nfs4`    | NFSv4.2                                                           |
//! | `$RIG/nfs3`    | NFSv3 (client A)                                                  |
//! | `$RIG/nfs3b`   | NFSv3 with `nosharecache`: client B, with its own attribute cache |
//!
//! All three show the same directory `racelab/` of the one export ([`Mounts`]). The command
//! runs there with the caller's environment and working directory plus `RACELAB_NFS4`,
//! `RACELAB_NFS3` and `RACELAB_NFS3B`, its output streams to the host's stdout, and its exit
//! status comes back (`cargo xtask nfs run -- sh -c 'exit 7'` exits 7).
//!
//! Architecture invariant: **no mount is ever made on the host.** Every mount lives in the
//! guest kernel and vanishes with it; the host only sees the rig directory's plain files. The
//! guest's `/` is the host's `/` read-write, so the init script ([`guest`]) puts guest-private
//! tmpfs over `/run` and `/var/lib/nfs` and a bind over `/etc/exports`: the host's NFS
//! configuration is never written.
//!
//! The rig directory (default [`DEFAULT_RIG`]) caches the unpacked UML package (`uml/`, `mods/`,
//! about 120 MB) so later runs boot in seconds; everything else in it (the init script, the
//! command file, the export and mount-point directories, UML's umid directory) is runtime state,
//! removed when the run ends — normally, on failure, and on Ctrl-C/SIGTERM, which kill the UML
//! process group. A `lock` file serialises runs on one rig.
//!
//! Measured on this machine kind (two cores, noisy): first run on a fresh rig (download and
//! unpack the package, boot) about 9 s; cached boot to the command's first line about 4-5 s.

mod guest;
mod setup;

pub mod cli;
pub mod suite;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

pub use guest::{Ended, Run};

/// Where `cargo xtask nfs run` keeps its rig unless `--rig` says otherwise.
pub const DEFAULT_RIG: &str = "/tmp/racelab-nfs";

/// Everything that can stop a run before the command's own status is known.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`cargo xtask nfs run` needs root: it installs Debian packages (nfs-kernel-server, kmod, user-mode-linux) and boots a User-mode Linux guest that runs nfsd and mounts NFS; run it as root (e.g. with sudo)")]
    NotRoot,
    #[error("rig {0}: {1}")]
    BadRig(PathBuf, String),
    #[error("setting up the NFS rig failed: {0}")]
    Setup(String),
    /// The guest did not get as far as running the command; `console` is what it printed.
    #[error("{what}\n--- guest console (last lines) ---\n{console}\n--- end of guest console ---")]
    Guest { what: String, console: String },
    #[error("{0}")]
    Io(String),
    /// The guest cannot boot on this host at all (not a failure of one run).
    #[error("{0}")]
    HostUnsupported(String),
}

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
}

/// How to run a command in the guest.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// The rig directory: the cached UML package and the run's runtime files (`--rig`).
    pub rig: PathBuf,
    /// The command's working directory inside the guest (the same path as on the host).
    pub cwd: PathBuf,
    /// How long the guest may take from start to the mounts being up before the run is
    /// abandoned as a failed boot (cached boots take seconds; a first one also unpacks modules).
    pub boot_timeout: Duration,
    /// Guest memory (UML's `mem=`).
    pub memory: String,
}

impl Options {
    /// The default rig, the current directory, a 3-minute boot limit, 1 GiB of guest memory.
    pub fn new() -> Self {
        Options {
            rig: PathBuf::from(DEFAULT_RIG),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            boot_timeout: Duration::from_secs(180),
            memory: "1G".into(),
        }
    }

    /// The directories the command will see (they exist only inside the guest).
    pub fn mounts(&self) -> Mounts {
        Mounts { nfs4: self.rig.join("nfs4/racelab"), nfs3: self.rig.join("nfs3/racelab"), nfs3b: self.rig.join("nfs3b/racelab") }
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
    if !nix::unistd::Uid::effective().is_root() {
        return Err(Error::NotRoot);
    }
    if argv.is_empty() {
        return Err(Error::Io("no command to run in the guest; pass one after `--`".into()));
    }
    crate::signals::install().map_err(|e| Error::Io(e.to_string()))?;
    let rig = setup::Rig::open(&opts.rig)?;
    let lock = rig.lock()?;
    if let Some(sig) = crate::signals::pending() {
        return Ok(Run::interrupted(sig));
    }
    let kernel = rig.ensure_installed()?;
    let result = guest::boot_and_run(&rig, &kernel, opts, argv);
    drop(lock);
    result
}
