//! Lock files and other inter-process locks behind one trait, for real backends and benchmarks.
//!
//! (Not to be confused with `racelab_core::model::locks`, the model world's mutexes.)
//!
//! | strategy | mechanism | a crashed holder | NFS |
//! |---|---|---|---|
//! | [`LinkLock`] | claim file + `link(2)`, nlink == 2, mtime = expiry (flufl.lock's on-disk protocol) | taken over after `lifetime + clock_slop` | yes (the reason it exists) |
//! | [`ExclLock`] | `open(O_CREAT\|O_EXCL)` | stays locked until someone removes the file | O_EXCL on NFSv3+ only |
//! | [`MkdirLock`] | `mkdir(2)` | stays locked | yes |
//! | [`FlockLock`] | `flock(LOCK_EX)` | released by the kernel | emulated with fcntl locks by Linux's NFS client |
//! | [`FcntlLock`] | POSIX `fcntl(F_SETLKW)` | released by the kernel | via lockd / NFSv4 |
//! | [`OfdLock`] | `fcntl(F_OFD_SETLKW)` | released by the kernel | via lockd / NFSv4 |
//! | [`MutexLock`] | `std::sync::Mutex` + `Condvar`, in-process | n/a | n/a |
//!
//! [`FcntlLock`] excludes *processes* only: POSIX record locks belong to the process, so two
//! threads of one process both get them (and closing any descriptor of the file drops them).
//! The benchmarks therefore run it with processes only.
//!
//! # What LinkLock guarantees, and where a lease cannot
//!
//! [`LinkLock`] is a lease: mutual exclusion holds as long as no process pauses (is stopped,
//! swapped out, waits for a hung NFS server) for longer than its `lifetime`, and every holder
//! releases within it. Crashes anywhere, and pauses shorter than the lifetime anywhere, keep it:
//! the scenario `scenarios/racelab-linklock.race` models [`LinkLock`] call by call, and its
//! variants `crash`, `crash-two` and `crash-and-stall` hold under exploration (the test
//! `scenarios/tests/it/linklock.rs` fails if they do not). The variant `stall-past-lifetime`
//! shows where it cannot hold: a holder stopped for 40 s (past `lifetime + clock_slop`) has its
//! lock taken over, and when it resumes it is inside its critical section beside the new holder;
//! its [`FileLock::release`] then reports [`LockError::NotLocked`]. That is a lease's nature, not
//! a bug to fix: no lock that can be broken survives a holder that outlives its lease.
//! `flufl-lock-10` shows flufl.lock 10.0's own algorithm breaking mutual exclusion with a mere
//! crash; [`link`] explains the two differences that fix it.
//!
//! # The public API
//!
//! The strategies above behind [`FileLock`] ([`Strategy`] names them for the benchmarks),
//! [`LockError`], and the benchmark parts: [`worker`] (a lock owner in a process),
//! [`stats`] (latency histograms) and [`floor`] (the cost floor).

// The API is what the crate root exports; anything else `pub` is a warning (CI denies warnings).
#![warn(unreachable_pub)]

pub mod floor;
mod link;
mod simple;
pub mod stats;
pub mod worker;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use link::{LinkLock, LinkOptions};
pub use simple::{ExclLock, FcntlLock, FlockLock, MkdirLock, MutexLock, OfdLock};

/// Why a lock operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("timed out after {waited:?} waiting for the lock {path}: another process holds it (raise the timeout, or find the holder)")]
    TimedOut { path: PathBuf, waited: Duration },
    #[error("not locked: {path} {why}")]
    NotLocked { path: PathBuf, why: String },
    #[error("already locked by this lock object: {path} (release it before acquiring again)")]
    AlreadyLocked { path: PathBuf },
    #[error("{what} {}: {source} ({hint})", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("{0}")]
    BadInput(String),
}

impl LockError {
    pub(crate) fn io(
        what: &'static str,
        path: &Path,
        source: impl Into<std::io::Error>,
    ) -> LockError {
        let source = source.into();
        let hint = match source.kind() {
            std::io::ErrorKind::PermissionDenied => "check the directory's permissions and owner",
            std::io::ErrorKind::NotFound => "does the lock's directory exist?",
            std::io::ErrorKind::Unsupported => {
                "this filesystem does not support this lock strategy; pick another"
            }
            _ => "check the filesystem the lock lives on",
        };
        LockError::Io {
            what,
            path: path.to_path_buf(),
            source,
            hint,
        }
    }
}

/// One owner's handle on a lock: each thread or process that contends makes its own.
pub trait FileLock: Send {
    /// Blocks until the lock is ours, or `timeout` passes (`None`: wait for ever).
    fn acquire(&mut self, timeout: Option<Duration>) -> Result<(), LockError>;
    /// Releases a lock acquired by [`FileLock::acquire`]. [`LockError::NotLocked`] if we did not
    /// hold it (for [`LinkLock`]: our lease expired and someone took the lock over).
    fn release(&mut self) -> Result<(), LockError>;
}

/// The strategies, by name (the names the benchmarks, reports and `racelab __lockbench` use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Strategy {
    Link,
    Excl,
    Mkdir,
    Flock,
    Fcntl,
    Ofd,
    Mutex,
}

impl Strategy {
    pub const ALL: [Strategy; 7] = [
        Strategy::Link,
        Strategy::Excl,
        Strategy::Mkdir,
        Strategy::Flock,
        Strategy::Fcntl,
        Strategy::Ofd,
        Strategy::Mutex,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Link => "link",
            Strategy::Excl => "excl",
            Strategy::Mkdir => "mkdir",
            Strategy::Flock => "flock",
            Strategy::Fcntl => "fcntl",
            Strategy::Ofd => "ofd",
            Strategy::Mutex => "mutex",
        }
    }

    pub fn parse(s: &str) -> Result<Strategy, LockError> {
        Strategy::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                LockError::BadInput(format!(
                    "unknown lock strategy `{s}`; one of: {}",
                    Strategy::ALL.map(Strategy::name).join(", ")
                ))
            })
    }

    /// Whether several threads of one process exclude each other with it.
    pub fn excludes_threads(self) -> bool {
        self != Strategy::Fcntl
    }

    /// Whether several processes exclude each other with it.
    pub fn excludes_processes(self) -> bool {
        self != Strategy::Mutex
    }

    /// The path the lock lives at, for a lock named `name` in `dir` (a directory for mkdir).
    pub fn path_in(self, dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}.{}", self.name()))
    }

    /// A fresh handle for one owner. [`MutexLock`]s are shared through `shared` (one per lock).
    pub(crate) fn open(
        self,
        path: &Path,
        shared: &MutexLock,
    ) -> Result<Box<dyn FileLock>, LockError> {
        Ok(match self {
            Strategy::Link => Box::new(LinkLock::new(path, LinkOptions::default())?),
            Strategy::Excl => Box::new(ExclLock::new(path)),
            Strategy::Mkdir => Box::new(MkdirLock::new(path)),
            Strategy::Flock => Box::new(FlockLock::new(path)),
            Strategy::Fcntl => Box::new(FcntlLock::new(path)),
            Strategy::Ofd => Box::new(OfdLock::new(path)),
            Strategy::Mutex => Box::new(shared.clone()),
        })
    }
}

/// Sleeps between polls: exponential from `min` to `max`, with jitter so that waiters that woke
/// together do not retry in lockstep.
pub(crate) struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
    seed: u64,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos() as u64)
            ^ (std::process::id() as u64) << 32;
        Backoff {
            next: min,
            min,
            max,
            seed: seed | 1,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }

    /// The next nap, between half of the current step and the step; the step then doubles.
    pub(crate) fn nap(&mut self) -> Duration {
        // xorshift64: a dependency-free source of jitter (not of security).
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let step = self.next.as_nanos() as u64;
        let d = Duration::from_nanos(step / 2 + self.seed % (step / 2 + 1));
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub(crate) fn sleep(&mut self, deadline: Option<std::time::Instant>) {
        let mut d = self.nap();
        if let Some(dl) = deadline {
            d = d.min(dl.saturating_duration_since(std::time::Instant::now()));
        }
        std::thread::sleep(d);
    }
}
