//! The physical floor: the raw system calls of one uncontended acquire/release of each strategy,
//! with nothing around them (no error mapping, no path building, no ownership checks), so that
//! strategy ÷ floor is what the library adds and floor is what the filesystem costs.
//!
//! | strategy | the floor's calls |
//! |---|---|
//! | link | `open(claim, O_CREAT\|O_TRUNC)`, `write`, `close`, `link(claim, lock)`, `unlink(lock)`, `unlink(claim)` |
//! | excl | `open(lock, O_CREAT\|O_EXCL)`, `close`, `unlink(lock)` |
//! | mkdir | `mkdir(lock)`, `rmdir(lock)` |
//! | flock | `flock(LOCK_EX)`, `flock(LOCK_UN)` on an open descriptor |
//! | fcntl / ofd | `fcntl(F_SETLK / F_OFD_SETLK, F_WRLCK)`, the same with `F_UNLCK` |
//! | mutex | `Mutex::lock`, dropping the guard |
//!
//! LinkLock's own cycle adds the expiry (`utimensat` before `link` and in release) and the
//! ownership check of release (`stat` of the claim, `open`/`read`/`close` of the lock file):
//! what makes it safe to break and interoperable with flufl.lock.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;

use nix::fcntl::{fcntl, open, AtFlags, FcntlArg, OFlag, AT_FDCWD};
use nix::libc;
use nix::sys::stat::Mode;
use nix::unistd::{linkat, unlink, unlinkat, write, UnlinkatFlags};

use super::{LockError, Strategy};

/// One raw acquire/release; call [`Floor::cycle`] in a loop.
pub struct Floor {
    strategy: Strategy,
    lock: CString,
    claim: CString,
    claim_bytes: Vec<u8>,
    file: Option<File>,
    mutex: Mutex<()>,
}

fn cstring(p: &Path) -> Result<CString, LockError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| LockError::BadInput(format!("path {} contains a NUL byte", p.display())))
}

impl Floor {
    /// A floor for `strategy` on the lock path `lock` (its directory must exist).
    pub fn new(strategy: Strategy, lock: &Path) -> Result<Floor, LockError> {
        let claim = lock.with_extension("floor-claim");
        let file = match strategy {
            Strategy::Flock | Strategy::Fcntl | Strategy::Ofd => Some(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(lock)
                    .map_err(|e| LockError::io("opening the lock file", lock, e))?,
            ),
            _ => None,
        };
        Ok(Floor {
            strategy,
            lock: cstring(lock)?,
            claim: cstring(&claim)?,
            claim_bytes: claim.as_os_str().as_bytes().to_vec(),
            file,
            mutex: Mutex::new(()),
        })
    }

    /// One acquire/release. Errors name the call; the floor never waits (nobody contends).
    pub fn cycle(&self) -> nix::Result<()> {
        match self.strategy {
            Strategy::Link => {
                let fd = open(
                    self.claim.as_c_str(),
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o644),
                )?;
                write(&fd, &self.claim_bytes)?;
                drop(fd);
                linkat(
                    AT_FDCWD,
                    self.claim.as_c_str(),
                    AT_FDCWD,
                    self.lock.as_c_str(),
                    AtFlags::empty(),
                )?;
                unlink(self.lock.as_c_str())?;
                unlink(self.claim.as_c_str())
            }
            Strategy::Excl => {
                drop(open(
                    self.lock.as_c_str(),
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o644),
                )?);
                unlink(self.lock.as_c_str())
            }
            Strategy::Mkdir => {
                nix::unistd::mkdir(self.lock.as_c_str(), Mode::from_bits_truncate(0o755))?;
                unlinkat(AT_FDCWD, self.lock.as_c_str(), UnlinkatFlags::RemoveDir)
            }
            Strategy::Flock => {
                let fd = self.fd();
                #[allow(deprecated)]
                // the raw call on purpose: Flock<T> would move the File in and out
                nix::fcntl::flock(fd.as_raw_fd(), nix::fcntl::FlockArg::LockExclusive)?;
                #[allow(deprecated)]
                nix::fcntl::flock(fd.as_raw_fd(), nix::fcntl::FlockArg::Unlock)
            }
            Strategy::Fcntl | Strategy::Ofd => {
                let fd = self.fd();
                let lk = |t: libc::c_int| libc::flock {
                    l_type: t as libc::c_short,
                    l_whence: libc::SEEK_SET as libc::c_short,
                    l_start: 0,
                    l_len: 0,
                    l_pid: 0,
                };
                let (w, u) = (lk(libc::F_WRLCK), lk(libc::F_UNLCK));
                if self.strategy == Strategy::Fcntl {
                    fcntl(fd.as_fd(), FcntlArg::F_SETLK(&w))?;
                    fcntl(fd.as_fd(), FcntlArg::F_SETLK(&u)).map(drop)
                } else {
                    fcntl(fd.as_fd(), FcntlArg::F_OFD_SETLK(&w))?;
                    fcntl(fd.as_fd(), FcntlArg::F_OFD_SETLK(&u)).map(drop)
                }
            }
            Strategy::Mutex => {
                drop(self.mutex.lock().unwrap_or_else(|p| p.into_inner()));
                Ok(())
            }
        }
    }

    fn fd(&self) -> &File {
        let Some(f) = self.file.as_ref() else {
            unreachable!("Floor::new opens the file for kernel locks")
        };
        f
    }
}
