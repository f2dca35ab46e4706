//! The other strategies: O_EXCL and mkdir lock files, the kernel's flock/fcntl/OFD locks, and an
//! in-process mutex as the baseline.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, Flock, FlockArg};
use nix::libc;

use super::{Backoff, FileLock, LockError};

const POLL: (Duration, Duration) = (Duration::from_micros(50), Duration::from_millis(20));

fn timed_out(path: &Path, start: Instant) -> LockError {
    LockError::TimedOut {
        path: path.to_path_buf(),
        waited: start.elapsed(),
    }
}

/// Polls `attempt` (true: got it) with back-off until it succeeds or the deadline passes.
fn poll(
    path: &Path,
    timeout: Option<Duration>,
    mut attempt: impl FnMut() -> Result<bool, LockError>,
) -> Result<(), LockError> {
    let start = Instant::now();
    let deadline = timeout.map(|t| start + t);
    let mut backoff = Backoff::new(POLL.0, POLL.1);
    loop {
        if attempt()? {
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(timed_out(path, start));
        }
        backoff.sleep(deadline);
    }
}

/// `open(O_CREAT|O_EXCL)`: whoever creates the file holds the lock. No expiry: a crashed
/// holder's file stays until someone removes it.
pub struct ExclLock {
    path: PathBuf,
    locked: bool,
}

impl ExclLock {
    pub(crate) fn new(path: &Path) -> ExclLock {
        ExclLock {
            path: path.to_path_buf(),
            locked: false,
        }
    }
}

impl FileLock for ExclLock {
    fn acquire(&mut self, timeout: Option<Duration>) -> Result<(), LockError> {
        if self.locked {
            return Err(LockError::AlreadyLocked {
                path: self.path.clone(),
            });
        }
        let path = self.path.clone();
        poll(&path, timeout, || {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&path)
            {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(LockError::io("creating (O_EXCL)", &path, e)),
            }
        })?;
        self.locked = true;
        Ok(())
    }

    fn release(&mut self) -> Result<(), LockError> {
        if !std::mem::take(&mut self.locked) {
            return Err(LockError::NotLocked {
                path: self.path.clone(),
                why: "by this lock object".into(),
            });
        }
        std::fs::remove_file(&self.path).map_err(|e| LockError::io("removing", &self.path, e))
    }
}

/// `mkdir(2)`: atomic on every filesystem including old NFS. No expiry.
pub struct MkdirLock {
    path: PathBuf,
    locked: bool,
}

impl MkdirLock {
    pub(crate) fn new(path: &Path) -> MkdirLock {
        MkdirLock {
            path: path.to_path_buf(),
            locked: false,
        }
    }
}

impl FileLock for MkdirLock {
    fn acquire(&mut self, timeout: Option<Duration>) -> Result<(), LockError> {
        if self.locked {
            return Err(LockError::AlreadyLocked {
                path: self.path.clone(),
            });
        }
        let path = self.path.clone();
        poll(&path, timeout, || match std::fs::create_dir(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(LockError::io("mkdir", &path, e)),
        })?;
        self.locked = true;
        Ok(())
    }

    fn release(&mut self) -> Result<(), LockError> {
        if !std::mem::take(&mut self.locked) {
            return Err(LockError::NotLocked {
                path: self.path.clone(),
                why: "by this lock object".into(),
            });
        }
        std::fs::remove_dir(&self.path).map_err(|e| LockError::io("rmdir", &self.path, e))
    }
}

/// Opens (creating) the file a kernel lock is taken on; kept open by the handle, so that
/// acquiring is only the lock call. The file is never removed: removing it while another owner
/// waits on its descriptor would let a third owner lock a different inode of the same name.
fn open_lock_file(path: &Path) -> Result<File, LockError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(|e| LockError::io("opening the lock file", path, e))
}

/// `flock(LOCK_EX)` on a descriptor of its own: excludes threads and processes; the kernel
/// releases it when the holder dies.
pub struct FlockLock {
    path: PathBuf,
    file: Option<File>,
    held: Option<Flock<File>>,
}

impl FlockLock {
    pub(crate) fn new(path: &Path) -> FlockLock {
        FlockLock {
            path: path.to_path_buf(),
            file: None,
            held: None,
        }
    }
}

impl FileLock for FlockLock {
    fn acquire(&mut self, timeout: Option<Duration>) -> Result<(), LockError> {
        if self.held.is_some() {
            return Err(LockError::AlreadyLocked {
                path: self.path.clone(),
            });
        }
        let mut file = match self.file.take() {
            Some(f) => f,
            None => open_lock_file(&self.path)?,
        };
        let start = Instant::now();
        let mut backoff = Backoff::new(POLL.0, POLL.1);
        loop {
            let arg = if timeout.is_some() {
                FlockArg::LockExclusiveNonblock
            } else {
                FlockArg::LockExclusive
            };
            match Flock::lock(file, arg) {
                Ok(held) => {
                    self.held = Some(held);
                    return Ok(());
                }
                Err((f, Errno::EWOULDBLOCK | Errno::EINTR)) => file = f,
                Err((f, e)) => {
                    self.file = Some(f);
                    return Err(LockError::io("flock(LOCK_EX)", &self.path, e));
                }
            }
            if timeout.is_some_and(|t| start.elapsed() >= t) {
                self.file = Some(file);
                return Err(timed_out(&self.path, start));
            }
            backoff.sleep(timeout.map(|t| start + t));
        }
    }

    fn release(&mut self) -> Result<(), LockError> {
        let held = self.held.take().ok_or_else(|| LockError::NotLocked {
            path: self.path.clone(),
            why: "by this lock object".into(),
        })?;
        match held.unlock() {
            Ok(f) => {
                self.file = Some(f);
                Ok(())
            }
            Err((held, e)) => {
                // Dropping the Flock unlocks (and closes) anyway; report what the explicit call said.
                drop(held);
                Err(LockError::io("flock(LOCK_UN)", &self.path, e))
            }
        }
    }
}

/// A whole-file write lock request for fcntl: `l_type` F_WRLCK or F_UNLCK.
fn whole_file(l_type: libc::c_int) -> libc::flock {
    libc::flock {
        l_type: l_type as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

/// What a record lock is owned by: the process (POSIX) or the open file description (OFD).
#[derive(Clone, Copy, PartialEq, Eq)]
enum RecordOwner {
    Process,
    Description,
}

/// A whole-file record lock via fcntl, shared by [`FcntlLock`] and [`OfdLock`].
struct RecordLock {
    path: PathBuf,
    file: Option<File>,
    locked: bool,
    owner: RecordOwner,
}

impl RecordLock {
    fn call(&self, fd: &File, l_type: libc::c_int, wait: bool) -> nix::Result<libc::c_int> {
        let fl = whole_file(l_type);
        let arg = match (self.owner, wait) {
            (RecordOwner::Process, true) => FcntlArg::F_SETLKW(&fl),
            (RecordOwner::Process, false) => FcntlArg::F_SETLK(&fl),
            (RecordOwner::Description, true) => FcntlArg::F_OFD_SETLKW(&fl),
            (RecordOwner::Description, false) => FcntlArg::F_OFD_SETLK(&fl),
        };
        fcntl(fd.as_fd(), arg)
    }

    fn what(&self) -> &'static str {
        match self.owner {
            RecordOwner::Process => "fcntl(F_SETLK, F_WRLCK)",
            RecordOwner::Description => "fcntl(F_OFD_SETLK, F_WRLCK)",
        }
    }

    fn acquire(&mut self, timeout: Option<Duration>) -> Result<(), LockError> {
        if self.locked {
            return Err(LockError::AlreadyLocked {
                path: self.path.clone(),
            });
        }
        if self.file.is_none() {
            self.file = Some(open_lock_file(&self.path)?);
        }
        let start = Instant::now();
        let mut backoff = Backoff::new(POLL.0, POLL.1);
        loop {
            let Some(file) = self.file.as_ref() else {
                unreachable!("opened above")
            };
            match self.call(file, libc::F_WRLCK, timeout.is_none()) {
                Ok(_) => {
                    self.locked = true;
                    return Ok(());
                }
                Err(Errno::EAGAIN | Errno::EACCES | Errno::EINTR) => {}
                Err(e) => return Err(LockError::io(self.what(), &self.path, e)),
            }
            if timeout.is_some_and(|t| start.elapsed() >= t) {
                return Err(timed_out(&self.path, start));
            }
            backoff.sleep(timeout.map(|t| start + t));
        }
    }

    fn release(&mut self) -> Result<(), LockError> {
        if !std::mem::take(&mut self.locked) {
            return Err(LockError::NotLocked {
                path: self.path.clone(),
                why: "by this lock object".into(),
            });
        }
        let Some(file) = self.file.as_ref() else {
            unreachable!("a locked RecordLock has its file")
        };
        self.call(file, libc::F_UNLCK, false)
            .map(drop)
            .map_err(|e| LockError::io("fcntl(F_UNLCK)", &self.path, e))
    }
}

/// POSIX `fcntl(F_SETLKW)` record lock on the whole file. Owned by the *process*: excludes other
/// processes only; the kernel releases it when the holder dies (or closes any descriptor of it).
pub struct FcntlLock(RecordLock);

impl FcntlLock {
    pub fn new(path: &Path) -> FcntlLock {
        FcntlLock(RecordLock {
            path: path.to_path_buf(),
            file: None,
            locked: false,
            owner: RecordOwner::Process,
        })
    }
}

impl FileLock for FcntlLock {
    fn acquire(&mut self, timeout: Option<Duration>) -> Result<(), LockError> {
        self.0.acquire(timeout)
    }
    fn release(&mut self) -> Result<(), LockError> {
        self.0.release()
    }
}

/// Linux open-file-description lock (`F_OFD_SETLKW`): fcntl's byte ranges with flock's
/// ownership (per open file), so it excludes threads with their own descriptors, too.
pub struct OfdLock(RecordLock);

impl OfdLock {
    pub(crate) fn new(path: &Path) -> OfdLock {
        OfdLock(RecordLock {
            path: path.to_path_buf(),
            file: None,
            locked: false,
            owner: RecordOwner::Description,
        })
    }
}

impl FileLock for OfdLock {
    fn acquire(&mut self, timeout: Option<Duration>) -> Result<(), LockError> {
        self.0.acquire(timeout)
    }
    fn release(&mut self) -> Result<(), LockError> {
        self.0.release()
    }
}

/// The in-process baseline: a flag under a `std::sync::Mutex`, waited for on a `Condvar` (a
/// guard cannot outlive the `acquire` call that would return it). Clones share the lock.
#[derive(Clone, Default)]
pub struct MutexLock {
    shared: Arc<(Mutex<bool>, Condvar)>,
    mine: bool,
}

impl MutexLock {
    pub fn new() -> MutexLock {
        MutexLock::default()
    }
}

impl FileLock for MutexLock {
    fn acquire(&mut self, timeout: Option<Duration>) -> Result<(), LockError> {
        let (m, cv) = &*self.shared;
        // A poisoned mutex only means another owner panicked; the flag is still meaningful.
        let mut held = m.lock().unwrap_or_else(|p| p.into_inner());
        let start = Instant::now();
        while *held {
            held = match timeout {
                None => cv.wait(held).unwrap_or_else(|p| p.into_inner()),
                Some(t) => {
                    let left = t.saturating_sub(start.elapsed());
                    if left.is_zero() {
                        return Err(timed_out(Path::new("(in-process mutex)"), start));
                    }
                    cv.wait_timeout(held, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
        *held = true;
        self.mine = true;
        Ok(())
    }

    fn release(&mut self) -> Result<(), LockError> {
        if !std::mem::take(&mut self.mine) {
            return Err(LockError::NotLocked {
                path: PathBuf::from("(in-process mutex)"),
                why: "by this handle".into(),
            });
        }
        let (m, cv) = &*self.shared;
        *m.lock().unwrap_or_else(|p| p.into_inner()) = false;
        cv.notify_one();
        Ok(())
    }
}
