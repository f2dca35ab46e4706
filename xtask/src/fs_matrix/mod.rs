//! The real filesystem matrix: tmpfs, ext4, xfs, btrfs (each on a loop-device image) and overlayfs, under one temp root.
//!
//! [`Matrix::up`] brings them up, each with a writable directory for scenarios; a filesystem that
//! cannot come up (its mkfs is not installed, the kernel refuses the mount) is an entry with
//! `skipped` saying why, and the others still come up. Every action is written to the intent log
//! `<root>/state.json` before it is performed ([`state`]), so [`down`] can undo any prefix of the
//! work, including that of an `up` that crashed. The [`Matrix`] is a guard: dropping it (or calling
//! [`Matrix::down`]) tears everything down; [`Matrix::keep`] hands it over to a later `fs down`.
//!
//! Ctrl-C and SIGTERM are polled between actions (see [`crate::signals`]): `up` then undoes what
//! it did and returns [`Error::Interrupted`].

pub mod state;
pub mod sys;
pub mod teardown;

mod bring_up;
mod down;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use self::bring_up::{make_root, mkdir};
pub use self::down::{down, DownOutcome, Target};
use crate::signals;
use state::{Op, StateFile};
pub use teardown::Report;

/// The filesystems of the matrix, in the order they come up (and go down in reverse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tmpfs,
    Ext4,
    Xfs,
    Btrfs,
    Overlay,
}

/// A filesystem that lives on a loop-device image.
struct Disk {
    /// Image size. Images are sparse: only what mkfs and the scenarios write takes disk space.
    bytes: u64,
    tool: &'static str,
    args: &'static [&'static str],
    /// The Debian package that provides `tool`, for the skip message.
    package: &'static str,
}

const MIB: u64 = 1024 * 1024;

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Tmpfs,
        Kind::Ext4,
        Kind::Xfs,
        Kind::Btrfs,
        Kind::Overlay,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Tmpfs => "tmpfs",
            Kind::Ext4 => "ext4",
            Kind::Xfs => "xfs",
            Kind::Btrfs => "btrfs",
            Kind::Overlay => "overlay",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    fn disk(self) -> Option<Disk> {
        // Sizes: each at or above what its mkfs accepts, with room to spare for lock benchmarks.
        // ext4 has no practical minimum; xfsprogs >= 5.19 (Debian 12 has 6.1) refuses anything
        // not larger than 300 MB ("Filesystem must be larger than 300MB"), and its 64 MiB log is
        // the only part mkfs really writes; btrfs-progs 6.2 wants >= 109 MiB per device, and from
        // 512 MiB up it lays out data/metadata block groups as on a normal-sized disk.
        // Force flags (-F/-f): the target is a regular file, and stdin is not a terminal to ask.
        match self {
            Kind::Ext4 => Some(Disk {
                bytes: 256 * MIB,
                tool: "mkfs.ext4",
                args: &["-q", "-F", "-L", "racelab-ext4"],
                package: "e2fsprogs",
            }),
            Kind::Xfs => Some(Disk {
                bytes: 512 * MIB,
                tool: "mkfs.xfs",
                args: &["-q", "-f", "-L", "racelab-xfs"],
                package: "xfsprogs",
            }),
            Kind::Btrfs => Some(Disk {
                bytes: 512 * MIB,
                tool: "mkfs.btrfs",
                args: &["-q", "-f", "-L", "racelab-btrfs"],
                package: "btrfs-progs",
            }),
            Kind::Tmpfs | Kind::Overlay => None,
        }
    }
}

/// tmpfs size limit (for the tmpfs entry and for the one under overlay's layers). Memory is used
/// only for what is written; the limit keeps a runaway scenario from eating the machine's RAM.
const TMPFS_DATA: &str = "size=256m,mode=0755";
/// The writable directory made in each filesystem for scenarios.
const SCENARIO_DIR: &str = "racelab";

/// What to bring up, and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// The matrix root; a new directory, or an empty one. None: a fresh `$TMPDIR/racelab-fs-XXXXXX`.
    pub root: Option<PathBuf>,
    /// Which filesystems, in matrix order whatever the order given.
    pub only: Vec<Kind>,
    /// For tests of teardown after a crash: SIGKILL ourselves at this action.
    #[doc(hidden)]
    pub crash: Option<Crash>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            root: None,
            only: Kind::ALL.to_vec(),
            crash: None,
        }
    }
}

/// Where a test wants `up` to die: at action `action` (0-based, in intent-log order), just before
/// performing it (its intent is logged) or just after (before its result is logged).
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Crash {
    pub action: usize,
    pub before: bool,
}

/// One filesystem of the matrix.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// `tmpfs`, `ext4`, `xfs`, `btrfs` or `overlay`.
    pub name: String,
    pub mountpoint: PathBuf,
    /// The writable directory for scenarios (`<mountpoint>/racelab`).
    pub dir: PathBuf,
    /// The type the kernel reports in /proc/self/mountinfo (the requested one when skipped).
    pub fstype: String,
    /// What statfs(2) on the mount point says (its f_type magic, named).
    pub statfs: String,
    /// Mount options as the kernel reports them (per-mount, then superblock).
    pub options: String,
    /// The mount source: the loop device, or a label for tmpfs/overlay.
    pub source: String,
    /// Image size in bytes for filesystems on a loop device.
    pub image_bytes: Option<u64>,
    /// Why it is not available: the exact command or syscall that failed and what it said.
    pub skipped: Option<String>,
}

/// Why `up` or `down` did not do what was asked. [`Error::exit_code`] maps each to DESIGN.md's codes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "`cargo xtask fs up` needs root: it mounts filesystems and attaches loop devices, and this process runs as uid {euid}. \
         Run it as root (e.g. `sudo -E cargo xtask fs up`); without root the real-filesystem backends are skipped"
    )]
    NotRoot { euid: u32 },
    #[error("{0}")]
    BadInput(String),
    #[error("interrupted by {}: tore down what had been set up{}", signals::name(*signal), problems_suffix(teardown_problems))]
    Interrupted {
        signal: i32,
        teardown_problems: Vec<String>,
    },
    #[error(
        "no filesystem could come up:\n{}{}",
        skipped_lines(skipped),
        problems_suffix(teardown_problems)
    )]
    NothingCameUp {
        skipped: Vec<Entry>,
        teardown_problems: Vec<String>,
    },
    #[error("teardown left things behind:\n  {}\nthe state file {} is kept: fix the cause and run `cargo xtask fs down --state {}` again", problems.join("\n  "), state.display(), state.display())]
    Teardown {
        problems: Vec<String>,
        state: PathBuf,
    },
    #[error(transparent)]
    Infra(#[from] anyhow::Error),
}

fn problems_suffix(p: &[String]) -> String {
    if p.is_empty() {
        String::new()
    } else {
        format!("; but teardown left things behind (run `cargo xtask fs down` with the printed root):\n  {}", p.join("\n  "))
    }
}

fn skipped_lines(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|e| format!("  {}: {}", e.name, e.skipped.as_deref().unwrap_or("?")))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    /// 2 bad input, 3 infrastructure, 128 + signal when interrupted.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::BadInput(_) => 2,
            Error::Interrupted { signal, .. } => signals::exit_code(*signal),
            Error::NotRoot { .. }
            | Error::NothingCameUp { .. }
            | Error::Teardown { .. }
            | Error::Infra(_) => 3,
        }
    }
}

/// How one step of bringing a filesystem up ended badly.
enum Step {
    /// This filesystem cannot come up here; the others can still try.
    Skip(String),
    Interrupted(i32),
    /// The matrix itself is broken (the intent log cannot be written): stop everything.
    Fatal(anyhow::Error),
}

impl From<sys::CmdError> for Step {
    fn from(e: sys::CmdError) -> Step {
        match e {
            sys::CmdError::Interrupted(sig) => Step::Interrupted(sig),
            sys::CmdError::Failed(msg) => Step::Skip(msg),
        }
    }
}

/// A matrix that is up. Dropping it tears it down; see [`Matrix::keep`] to leave it up.
#[derive(Debug)]
pub struct Matrix {
    /// None once torn down or kept.
    sf: Option<StateFile>,
    root: PathBuf,
    state_path: PathBuf,
    entries: Vec<Entry>,
    crash: Option<Crash>,
    up_seconds: f64,
}

impl Matrix {
    /// Brings up the requested filesystems. Skipped ones are entries with `skipped` set; it is an
    /// error only when none came up, when interrupted, or when the intent log cannot be written —
    /// and then everything already done has been undone.
    pub fn up(opts: &Options) -> Result<Matrix, Error> {
        let started = Instant::now();
        let euid = nix::unistd::geteuid();
        if !euid.is_root() {
            return Err(Error::NotRoot {
                euid: euid.as_raw(),
            });
        }
        if opts.only.is_empty() {
            return Err(Error::BadInput(
                "no filesystem requested; --only takes tmpfs,ext4,xfs,btrfs,overlay".into(),
            ));
        }
        signals::install()?;
        let (root, created_root) = make_root(opts.root.as_deref())?;
        let requested: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|k| opts.only.contains(k))
            .collect();
        let sf = match StateFile::create(
            &root,
            created_root,
            requested.iter().map(|k| k.name().to_string()).collect(),
        ) {
            Ok(sf) => sf,
            Err(e) => {
                if created_root {
                    let _ = std::fs::remove_dir_all(&root);
                }
                return Err(Error::Infra(e));
            }
        };
        let mut m = Matrix {
            state_path: sf.path.clone(),
            sf: Some(sf),
            root: root.clone(),
            entries: Vec::new(),
            crash: opts.crash,
            up_seconds: 0.0,
        };
        // From here on `m` owns the log: an early return drops it, and Drop tears down.
        let shared = [root.join("mnt"), root.join("img")];
        for dir in shared {
            match m.act("matrix", Op::Mkdir { path: dir.clone() }, |_| mkdir(&dir)) {
                Ok(()) => {}
                Err(Step::Interrupted(signal)) => return Err(m.fail_interrupted(signal)),
                Err(Step::Skip(msg)) => {
                    return Err(m.fail(anyhow::anyhow!("setting up the matrix root: {msg}")))
                }
                Err(Step::Fatal(e)) => return Err(m.fail(e)),
            }
        }
        for kind in requested {
            let start = m.log().state.actions.len();
            match m.bring_up(kind) {
                Ok(entry) => m.entries.push(entry),
                Err(Step::Skip(reason)) => {
                    // Roll back this filesystem's partial work now, so the matrix holds only live things.
                    let mut report = Report::default();
                    teardown::undo_from(m.log_mut(), start, &mut report);
                    let reason = if report.is_clean() {
                        reason
                    } else {
                        format!(
                            "{reason}; rolling back also failed: {}",
                            report.problems.join("; ")
                        )
                    };
                    let entry = m.skipped_entry(kind, reason);
                    m.entries.push(entry);
                }
                Err(Step::Interrupted(signal)) => return Err(m.fail_interrupted(signal)),
                Err(Step::Fatal(e)) => return Err(m.fail(e)),
            }
        }
        if m.entries.iter().all(|e| e.skipped.is_some()) {
            let skipped = std::mem::take(&mut m.entries);
            let report = m.teardown_now();
            return Err(Error::NothingCameUp {
                skipped,
                teardown_problems: report.problems,
            });
        }
        m.up_seconds = started.elapsed().as_secs_f64();
        let entries = m.entries.clone();
        let sf = m.log_mut();
        sf.state.entries = entries;
        sf.state.complete = true;
        if let Err(e) = sf.save() {
            return Err(m.fail(e));
        }
        Ok(m)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The intent log; `cargo xtask fs down --state <this>` tears the matrix down.
    pub fn state_path(&self) -> &Path {
        &self.state_path
    }

    /// Every requested filesystem, skipped ones included, in matrix order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The filesystems that are up.
    pub fn available(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.skipped.is_none())
    }

    /// Wall-clock seconds `up` took.
    pub fn up_seconds(&self) -> f64 {
        self.up_seconds
    }

    /// Tears the matrix down now; an error lists what was left behind (the state file is then kept).
    pub fn down(mut self) -> Result<Report, Error> {
        let report = self.teardown_now();
        if report.is_clean() {
            Ok(report)
        } else {
            Err(Error::Teardown {
                problems: report.problems,
                state: self.state_path.clone(),
            })
        }
    }

    /// Leaves the matrix up for a later `cargo xtask fs down`; returns (root, state file).
    pub fn keep(mut self) -> (PathBuf, PathBuf) {
        self.sf = None;
        (self.root.clone(), self.state_path.clone())
    }

    fn teardown_now(&mut self) -> Report {
        match self.sf.take() {
            Some(sf) => teardown::teardown(sf),
            None => Report::default(),
        }
    }

    fn fail_interrupted(&mut self, signal: i32) -> Error {
        eprintln!(
            "{}: tearing down the fs matrix at {} (a second signal aborts the teardown)",
            signals::name(signal),
            self.root.display()
        );
        let report = self.teardown_now();
        Error::Interrupted {
            signal,
            teardown_problems: report.problems,
        }
    }

    fn fail(&mut self, e: anyhow::Error) -> Error {
        let report = self.teardown_now();
        if report.is_clean() {
            Error::Infra(e)
        } else {
            Error::Infra(e.context(format!(
                "and teardown left things behind: {}",
                report.problems.join("; ")
            )))
        }
    }

    fn log(&self) -> &StateFile {
        // Only called while `up` runs, before anything takes the log.
        self.sf
            .as_ref()
            .unwrap_or_else(|| unreachable!("the intent log is held until up returns"))
    }

    fn log_mut(&mut self) -> &mut StateFile {
        self.sf
            .as_mut()
            .unwrap_or_else(|| unreachable!("the intent log is held until up returns"))
    }
}

impl Drop for Matrix {
    fn drop(&mut self) {
        if self.sf.is_some() {
            let state = self.state_path.clone();
            let report = self.teardown_now();
            if !report.is_clean() {
                eprintln!(
                    "tearing down the fs matrix left things behind:\n  {}\nrun `cargo xtask fs down --state {}` once the cause is fixed",
                    report.problems.join("\n  "),
                    state.display()
                );
            }
        }
    }
}
