//! [`LinkLock`]: the NFS-safe hard-link lock, on disk exactly as flufl.lock (Mailman 3) lays it out.
//!
//! The protocol, shared with flufl.lock so that both can contend for one lock file:
//! - the *claim file* is `<lockfile>|<hostname>|<pid>|<random>` and contains its own name, with no
//!   newline;
//! - acquiring is `link(claim, lockfile)`; the lock is held when the lock file's nlink is 2 and it
//!   names our claim (which is also how a lost `link` reply on NFS is recognised);
//! - a lock's mtime is its expiry: `now + lifetime`, set on the claim (flufl.lock's `_touch`); a
//!   lock whose expiry plus the clock slop (10 s) is past may be broken.
//!
//! Two things differ from flufl.lock 10.0; `scenarios/racelab-linklock.race` shows that both are
//! needed (its `flufl-lock-10` variant breaks mutual exclusion with one crash, as
//! `mailman-lockfile`'s `patched-crash` did), and that with them mutual exclusion survives crashes
//! and pauses shorter than the lifetime:
//! 1. The claim is touched right before every `link`. flufl.lock touches it once before its
//!    waiting loop, so a waiter that waited longer than `lifetime + clock_slop` links a claim whose
//!    expiry is already past, and its brand-new lock looks expired to every other waiter.
//! 2. An expired lock is never unlinked by name. If two waiters both judge it expired, both
//!    unlink "the lock file", and the second unlink removes the lock the first has just taken.
//!    LinkLock *takes the lock over* instead: `link(claim, claim.brk)`,
//!    `rename(claim.brk, lockfile)` replaces the expired lock atomically (the lock file never
//!    disappears, so no plain `link` can win in between); then it waits `grace` (the lifetime),
//!    touching its claim so its own lease cannot lapse, and checks that the lock is still its own.
//!    Every other waiter that judged the same lock expired did so before the takeover and, as no
//!    process pauses longer than the lifetime, has renamed its own claim over it by then: the last
//!    rename wins, the others see they lost and wait again.
//!
//! flufl.lock processes contending with LinkLock processes still break by unlinking, so their
//! side keeps flufl.lock's double-break window; LinkLock recognises a lock flufl broke (its
//! release returns [`LockError::NotLocked`]) but cannot prevent it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::{Backoff, FileLock, LockError};

/// flufl.lock's separator between the parts of a claim file's name.
pub(crate) const SEP: char = '|';

/// LinkLock's tunables. The defaults are flufl.lock's.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// How long a holder may keep the lock before others may break it (flufl.lock: 15 s).
    pub lifetime: Duration,
    /// Allowance for clocks that differ between NFS clients (flufl.lock's CLOCK_SLOP: 10 s).
    pub clock_slop: Duration,
    /// How long a takeover waits before it trusts the lock (the lifetime, unless set).
    pub grace: Option<Duration>,
    /// The shortest and longest poll interval while waiting.
    pub poll: (Duration, Duration),
    /// The host name in claim files (the machine's, unless set).
    pub hostname: Option<String>,
}

impl Default for LinkOptions {
    fn default() -> Self {
        LinkOptions {
            lifetime: Duration::from_secs(15),
            clock_slop: Duration::from_secs(10),
            grace: None,
            poll: (Duration::from_micros(50), Duration::from_millis(20)),
            hostname: None,
        }
    }
}

/// The hard-link lock; see the module documentation.
pub struct LinkLock {
    lockfile: PathBuf,
    claim: PathBuf,
    claim_name: String,
    opts: LinkOptions,
    locked: bool,
    backoff: Backoff,
}

fn random_u63() -> u64 {
    // RandomState is seeded from the OS per process and per instance: unique enough for a claim
    // name, without a dependency. flufl.lock uses random.randint(0, sys.maxsize).
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() >> 1
}

fn timespec(t: SystemTime) -> TimeSpec {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    TimeSpec::new(d.as_secs() as i64, d.subsec_nanos() as i64)
}

fn not_found(e: &std::io::Error) -> bool {
    // flufl.lock treats ESTALE like ENOENT (an NFS server's answer for a vanished file).
    e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ESTALE)
}

impl LinkLock {
    /// A lock on `lockfile` for this owner. Creates nothing until [`FileLock::acquire`].
    pub fn new(lockfile: &Path, opts: LinkOptions) -> Result<LinkLock, LockError> {
        let path = lockfile.to_str().ok_or_else(|| LockError::BadInput(format!("lock file path {} is not UTF-8; flufl.lock-compatible claim files need a text name", lockfile.display())))?;
        if path.contains(SEP) {
            return Err(LockError::BadInput(format!("lock file path {path} contains `{SEP}`, the separator of claim file names: choose a path without it")));
        }
        let host = match &opts.hostname {
            Some(h) => h.clone(),
            // A machine whose host name cannot be read still locks correctly: the name is only
            // informative (flufl.lock's `details`), uniqueness comes from the pid and the random part.
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".into()),
        };
        if host.contains(SEP) {
            return Err(LockError::BadInput(format!(
                "host name {host} contains `{SEP}`; set LinkOptions::hostname"
            )));
        }
        let claim_name = format!(
            "{path}{SEP}{host}{SEP}{}{SEP}{}",
            std::process::id(),
            random_u63()
        );
        let backoff = Backoff::new(opts.poll.0, opts.poll.1);
        Ok(LinkLock {
            lockfile: lockfile.to_path_buf(),
            claim: PathBuf::from(&claim_name),
            claim_name,
            opts,
            locked: false,
            backoff,
        })
    }

    /// This owner's claim file.
    pub fn claim_file(&self) -> &Path {
        &self.claim
    }

    /// The lock file itself.
    pub fn lockfile(&self) -> &Path {
        &self.lockfile
    }

    fn grace(&self) -> Duration {
        self.opts.grace.unwrap_or(self.opts.lifetime)
    }

    fn write_claim(&self) -> Result<(), LockError> {
        std::fs::write(&self.claim, self.claim_name.as_bytes())
            .map_err(|e| LockError::io("writing the claim file", &self.claim, e))
    }

    /// Sets the claim's expiry to now + lifetime. ENOENT: a breaker removed it (we were judged
    /// dead); the caller writes it again where that matters.
    fn refresh(&self) -> Result<(), LockError> {
        let t = timespec(SystemTime::now() + self.opts.lifetime);
        match utimensat(
            nix::fcntl::AT_FDCWD,
            &self.claim,
            &t,
            &t,
            UtimensatFlags::FollowSymlink,
        ) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ESTALE) => Ok(()),
            Err(e) => Err(LockError::io(
                "setting the expiry (mtime) of",
                &self.claim,
                e,
            )),
        }
    }

    /// The lock file is linked to our claim (nlink == 2) and names it.
    fn owns(&self) -> Result<bool, LockError> {
        match std::fs::metadata(&self.claim) {
            Ok(m) if m.nlink() == 2 => {}
            Ok(_) => return Ok(false),
            Err(e) if not_found(&e) => return Ok(false),
            Err(e) => return Err(LockError::io("stat", &self.claim, e)),
        }
        match std::fs::read(&self.lockfile) {
            Ok(name) => Ok(name == self.claim_name.as_bytes()),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(LockError::io("reading", &self.lockfile, e)),
        }
    }

    /// Replaces an expired lock by our claim, waits out the grace, and says whether it is ours.
    fn take_over(&mut self) -> Result<bool, LockError> {
        let winner = match std::fs::read(&self.lockfile) {
            Ok(w) => w,
            Err(e) if not_found(&e) => return Ok(false),
            Err(e) => return Err(LockError::io("reading", &self.lockfile, e)),
        };
        let brk = PathBuf::from(format!("{}.brk", self.claim_name));
        self.refresh()?;
        match std::fs::hard_link(&self.claim, &brk) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(LockError::io(
                    "linking the claim to its takeover name",
                    &brk,
                    e,
                ))
            }
        }
        std::fs::rename(&brk, &self.lockfile).map_err(|e| {
            LockError::io(
                "renaming the claim over the expired lock file",
                &self.lockfile,
                e,
            )
        })?;
        // The dead holder's claim, if the lock file named one of this lock's claims: never
        // remove a file the lock file merely names (flufl.lock refuses such locks, too).
        if let Ok(w) = std::str::from_utf8(&winner) {
            let ours = self.lockfile.to_str().map(|p| format!("{p}{SEP}"));
            if w != self.claim_name
                && ours.is_some_and(|p| w.starts_with(&p))
                && w.split(SEP).count() == 4
            {
                match std::fs::remove_file(w) {
                    Ok(()) => {}
                    Err(e) if not_found(&e) => {}
                    Err(e) => {
                        return Err(LockError::io(
                            "removing the expired holder's claim",
                            Path::new(w),
                            e,
                        ))
                    }
                }
            }
        }
        let until = Instant::now() + self.grace();
        let nap = self.opts.poll.1.min(self.opts.clock_slop);
        while Instant::now() < until {
            self.refresh()?;
            std::thread::sleep(nap.min(until.saturating_duration_since(Instant::now())));
        }
        self.refresh()?;
        self.owns()
    }

    fn give_up(&self) {
        // Best effort: a leftover claim is litter, never a lock (nothing links to it).
        let _ = std::fs::remove_file(&self.claim);
    }
}

impl FileLock for LinkLock {
    fn acquire(&mut self, timeout: Option<Duration>) -> Result<(), LockError> {
        if self.locked {
            return Err(LockError::AlreadyLocked {
                path: self.lockfile.clone(),
            });
        }
        let start = Instant::now();
        let deadline = timeout.map(|t| start + t);
        self.backoff.reset();
        self.write_claim()?;
        loop {
            self.refresh()?;
            match std::fs::hard_link(&self.claim, &self.lockfile) {
                Ok(()) => {
                    self.locked = true;
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    // A lost reply to our own link (NFS retransmission) looks like EEXIST.
                    if self.owns()? {
                        self.locked = true;
                        return Ok(());
                    }
                }
                Err(e) if not_found(&e) => self.write_claim()?,
                Err(e) => {
                    self.give_up();
                    return Err(LockError::io(
                        "linking the claim file to",
                        &self.lockfile,
                        e,
                    ));
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.give_up();
                return Err(LockError::TimedOut {
                    path: self.lockfile.clone(),
                    waited: start.elapsed(),
                });
            }
            let expired = match std::fs::metadata(&self.lockfile) {
                Ok(m) => {
                    let expiry = UNIX_EPOCH
                        + Duration::new(
                            m.mtime().max(0) as u64,
                            m.mtime_nsec().clamp(0, 999_999_999) as u32,
                        );
                    SystemTime::now() > expiry + self.opts.clock_slop
                }
                Err(e) if not_found(&e) => continue, // released: link again at once
                Err(e) => {
                    self.give_up();
                    return Err(LockError::io("stat", &self.lockfile, e));
                }
            };
            if expired && self.take_over()? {
                self.locked = true;
                return Ok(());
            }
            self.backoff.sleep(deadline);
        }
    }

    fn release(&mut self) -> Result<(), LockError> {
        if !self.locked {
            return Err(LockError::NotLocked {
                path: self.lockfile.clone(),
                why: "by this lock object (release without acquire)".into(),
            });
        }
        self.locked = false;
        self.refresh()?;
        if !self.owns()? {
            self.give_up();
            return Err(LockError::NotLocked {
                path: self.lockfile.clone(),
                why: format!("any more: it was broken while {} held it (held longer than the lifetime of {:?}?)", self.claim_name, self.opts.lifetime),
            });
        }
        match std::fs::remove_file(&self.lockfile) {
            Ok(()) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(LockError::io("removing", &self.lockfile, e)),
        }
        match std::fs::remove_file(&self.claim) {
            Ok(()) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(LockError::io("removing the claim file", &self.claim, e)),
        }
    }
}

impl Drop for LinkLock {
    fn drop(&mut self) {
        // A handle dropped while holding the lock releases it, as flufl.lock's context manager
        // would; errors have nowhere to go here, and the lock then expires by itself.
        if self.locked {
            let _ = self.release();
        } else {
            self.give_up();
        }
    }
}
