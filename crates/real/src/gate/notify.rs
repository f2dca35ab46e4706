//! Seccomp user notification for the gate: its two filters (notify, trace), the listener's ioctls,
//! and the gated calls racelab makes itself on a program's behalf (#23 goal 5).
//!
//! No safe crate wraps the listener (`seccompiler` only builds filters, `nix` has no seccomp),
//! so this module, and only it, uses `unsafe`: plain system calls on zeroed plain-data structs
//! and on buffers racelab owns.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::unistd::Pid;
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

use super::syscalls::{NOTIFIED, TRAPPED};

const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
/// The TRACE data that marks, in seccompiler's program, the calls turned into USER_NOTIF.
const NOTIFY_MARK: u32 = 0x5ec;

/// The environment variable by which racelab tells its launcher to trap every call with ptrace
/// (the bench's `gate-ptrace` way, `GateOptions::ptrace_only`); removed before the exec.
pub const PTRACE_ONLY_ENV: &str = "RACELAB_GATE_PTRACE_ONLY";

/// A filter that stops `calls` with SECCOMP_RET_TRACE, or with SECCOMP_RET_USER_NOTIF when
/// `notify` (seccompiler has no such action: its TRACE returns, marked, are swapped for it).
fn filter(calls: &[i64], notify: bool) -> Result<BpfProgram, seccompiler::BackendError> {
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        calls.iter().map(|&nr| (nr, Vec::new())).collect();
    let mark = if notify { NOTIFY_MARK } else { 0 };
    let prog: BpfProgram = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Trace(mark),
        TargetArch::x86_64,
    )?
    .try_into()?;
    Ok(prog
        .into_iter()
        .map(|mut i| {
            if notify && i.k == SECCOMP_RET_TRACE | NOTIFY_MARK {
                i.k = SECCOMP_RET_USER_NOTIF;
            }
            i
        })
        .collect())
}

/// Installs the gate's filters in this process (the launcher, before its exec): the calls in
/// [`NOTIFIED`] through a listener, when the kernel makes one (5.0+) and `ptrace_only` is
/// false, every other call in [`TRAPPED`] through ptrace (all of them without a listener).
/// Two filters: the kernel runs both and takes the answer that ranks first (USER_NOTIF before
/// TRACE before ALLOW), and each call is in one of them only, so it has exactly one path.
/// Returns whether a listener was made; it stays open (close-on-exec) until racelab has taken
/// its copy at the launcher's second stop.
pub fn install(ptrace_only: bool) -> Result<bool, String> {
    let traced: Vec<i64> = TRAPPED
        .iter()
        .copied()
        .filter(|nr| ptrace_only || !NOTIFIED.contains(nr))
        .collect();
    let mut listening = false;
    if !ptrace_only {
        let notify = filter(NOTIFIED, true).map_err(|e| e.to_string())?;
        listening = install_listening(&notify)?;
    }
    let traced = if listening { traced } else { TRAPPED.to_vec() };
    let prog = filter(&traced, false).map_err(|e| e.to_string())?;
    seccompiler::apply_filter(&prog).map_err(|e| e.to_string())?;
    Ok(listening)
}

/// Installs `prog` with a new listener. `Ok(false)`: the kernel has no listener to give.
fn install_listening(prog: &BpfProgram) -> Result<bool, String> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl and seccomp on a program racelab owns, alive across the calls.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(format!(
                "PR_SET_NO_NEW_PRIVS: {}",
                std::io::Error::last_os_error()
            ));
        }
        // WAIT_KILLABLE_RECV (5.19+): once racelab has received a call, only a fatal signal
        // interrupts it, so a held step is not restarted (and notified twice) by a signal.
        for flags in [
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
        ] {
            let fd = libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &fprog as *const libc::sock_fprog,
            );
            if fd >= 0 {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// One gated process's listener, racelab's copy.
pub(crate) struct Listener {
    fd: OwnedFd,
}

impl std::os::fd::AsFd for Listener {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One notification: the call's number, its arguments, the thread, and its id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request {
    pub id: u64,
    pub tid: Pid,
    pub nr: i64,
    pub args: [u64; 6],
}

/// How racelab answers a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// SECCOMP_USER_NOTIF_FLAG_CONTINUE: the call runs in the program.
    Continue,
    /// The call returns this (a value, or minus an errno), without running.
    Return(i64),
}

/// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (the libc crate has the ioctl, not the flag).
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

impl Listener {
    /// Takes a copy of the listener process `pid` holds (found by its name among its
    /// descriptors) with pidfd_getfd (5.6+). `None`: it holds none, or the kernel cannot.
    pub(crate) fn take(pid: Pid) -> Option<Listener> {
        let remote = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()?
            .flatten()
            .find(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|l| l.to_string_lossy().contains("seccomp notify"))
            })
            .and_then(|e| e.file_name().to_str()?.parse::<i32>().ok())?;
        // SAFETY: pidfd_open and pidfd_getfd on racelab's own traced child; the kernel returns
        // new descriptors racelab owns.
        unsafe {
            let pidfd = libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0);
            if pidfd < 0 {
                return None;
            }
            let pidfd = OwnedFd::from_raw_fd(pidfd as RawFd);
            let fd = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), remote, 0);
            if fd < 0 {
                return None;
            }
            // The woken supervisor runs on the notifying thread's CPU (6.6+; refused before,
            // which only costs speed): measured 10.5 us added per call against 44.3 without,
            // on an idle 2-core host (`cargo bench -p racelab --bench gate`, notif-emulate-sync).
            let _ = libc::ioctl(
                fd as RawFd,
                libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
            );
            Some(Listener {
                fd: OwnedFd::from_raw_fd(fd as RawFd),
            })
        }
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The next notification if one is waiting, without blocking.
    pub(crate) fn try_receive(&self) -> Option<Request> {
        loop {
            let mut pfd = libc::pollfd {
                fd: self.raw(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll on one pollfd racelab owns; RECV into a zeroed plain-data struct,
            // as the kernel demands.
            let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
            let r = unsafe {
                if libc::poll(&mut pfd, 1, 0) <= 0 || pfd.revents & libc::POLLIN == 0 {
                    return None;
                }
                libc::ioctl(self.raw(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req)
            };
            if r == 0 {
                return Some(Request {
                    id: req.id,
                    tid: Pid::from_raw(req.pid as i32),
                    nr: req.data.nr as i64,
                    args: req.data.args,
                });
            }
            // ENOENT: the caller was interrupted or died before racelab took its call.
        }
    }

    /// Whether notification `id` still waits for its answer (its thread has not died).
    pub(crate) fn valid(&self, id: u64) -> bool {
        let mut id = id;
        // SAFETY: ID_VALID reads a u64 racelab owns.
        unsafe { libc::ioctl(self.raw(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &mut id) == 0 }
    }

    /// Answers notification `id`. A thread that died meanwhile has nothing to answer.
    pub(crate) fn send(&self, id: u64, reply: Reply) {
        // SAFETY: SEND with a zeroed plain-data struct racelab fills in.
        let mut resp: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
        resp.id = id;
        match reply {
            Reply::Continue => resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
            Reply::Return(v) if v < 0 => resp.error = v as i32,
            Reply::Return(v) => resp.val = v,
        }
        // SAFETY: as above; ENOENT (the caller is gone) needs nothing.
        unsafe { libc::ioctl(self.raw(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    }
}

/// A path argument of an emulated call, as racelab passes it: an absolute path, or one through
/// `/proc/PID/cwd` or `/proc/PID/fd/N`, which the kernel resolves from the program's own
/// directory; or, for an empty path with AT_EMPTY_PATH, an O_PATH descriptor of the program's
/// file.
pub(crate) struct PathArg {
    pub path: CString,
    pub dirfd: Option<OwnedFd>,
}

impl PathArg {
    /// `raw` as the program named it from `dirfd`, in process `pid`. `None`: a descriptor the
    /// program does not hold.
    pub(crate) fn new(pid: Pid, dirfd: i64, raw: &str) -> Option<PathArg> {
        let base = if dirfd == libc::AT_FDCWD as i64 {
            format!("/proc/{pid}/cwd")
        } else {
            format!("/proc/{pid}/fd/{dirfd}")
        };
        // A descriptor the program does not hold: the kernel's EBADF, not the ENOENT that
        // `/proc/PID/fd/N/...` would give.
        let at_fd = dirfd != libc::AT_FDCWD as i64 && !raw.starts_with('/');
        if at_fd && std::fs::symlink_metadata(&base).is_err() {
            return None;
        }
        let (path, dirfd) = if raw.starts_with('/') {
            (raw.to_string(), None)
        } else if raw.is_empty() {
            let c = CString::new(base).ok()?;
            // SAFETY: open on a C string racelab owns; the descriptor is racelab's.
            let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            if fd < 0 {
                return None;
            }
            (String::new(), Some(unsafe { OwnedFd::from_raw_fd(fd) }))
        } else {
            (format!("{base}/{raw}"), None)
        };
        Some(PathArg {
            path: CString::new(path).ok()?,
            dirfd,
        })
    }

    /// The (dirfd, path pointer) the kernel is given.
    fn args(&self) -> (u64, u64) {
        let dirfd = self
            .dirfd
            .as_ref()
            .map_or(libc::AT_FDCWD, |f| f.as_raw_fd());
        (dirfd as i64 as u64, self.path.as_ptr() as u64)
    }
}

/// Where a call's arguments are: its (dirfd, path) pairs (`None`: a call without a dirfd) and
/// its buffer (argument, bytes, whether the kernel writes it).
pub(crate) struct Layout {
    pub paths: &'static [(Option<usize>, usize)],
    pub buf: Option<(usize, usize, bool)>,
}

/// The layout of each call racelab makes itself (x86_64); `None` for any other.
pub(crate) fn layout(nr: i64) -> Option<Layout> {
    const STAT: usize = std::mem::size_of::<libc::stat>();
    const STATX: usize = 256;
    let l = |paths, buf| Some(Layout { paths, buf });
    match nr {
        libc::SYS_stat | libc::SYS_lstat => l(&[(None, 0)], Some((1, STAT, true))),
        libc::SYS_newfstatat => l(&[(Some(0), 1)], Some((2, STAT, true))),
        libc::SYS_statx => l(&[(Some(0), 1)], Some((4, STATX, true))),
        libc::SYS_utime => l(&[(None, 0)], Some((1, 16, false))),
        libc::SYS_utimes => l(&[(None, 0)], Some((1, 32, false))),
        libc::SYS_utimensat | libc::SYS_futimesat => l(&[(Some(0), 1)], Some((2, 32, false))),
        libc::SYS_link | libc::SYS_rename => l(&[(None, 0), (None, 1)], None),
        libc::SYS_linkat | libc::SYS_renameat | libc::SYS_renameat2 => {
            l(&[(Some(0), 1), (Some(2), 3)], None)
        }
        libc::SYS_unlink | libc::SYS_rmdir => l(&[(None, 0)], None),
        libc::SYS_unlinkat => l(&[(Some(0), 1)], None),
        _ => None,
    }
}

/// Makes call `nr` here with the program's arguments `args`, its paths replaced by `paths`
/// (in the layout's order) and its buffer by `buf` (the program's input, or room for the
/// kernel's output): the same system call, flags and all, so its errors are the kernel's.
/// Returns the call's result (minus an errno on failure).
pub(crate) fn call(nr: i64, args: [u64; 6], paths: &[PathArg], buf: Option<&mut [u8]>) -> i64 {
    let Some(layout) = layout(nr) else {
        return -(libc::ENOSYS as i64);
    };
    let mut a = args;
    for ((dirfd_at, path_at), p) in layout.paths.iter().zip(paths) {
        let (dirfd, path) = p.args();
        if let Some(d) = dirfd_at {
            a[*d] = dirfd;
        }
        a[*path_at] = path;
    }
    if let (Some((at, _, _)), Some(b)) = (layout.buf, buf) {
        a[at] = b.as_mut_ptr() as u64;
    }
    // SAFETY: a system call whose pointer arguments are C strings and a buffer of the
    // layout's size, all racelab's and alive across the call; a null time buffer stays null.
    let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if r < 0 {
        -(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO) as i64)
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::syscalls::{decode, Call};

    #[test]
    fn every_notified_call_is_answered_or_made_with_its_paths_where_decode_reads_them() {
        for &nr in NOTIFIED {
            assert!(TRAPPED.contains(&nr), "{nr} is trapped");
            // Arguments that name a path everywhere a call may have one (non-null pointers).
            let args = [libc::AT_FDCWD as u64, 0x1000, 0x2000, 0x3000, 0x4000, 0];
            let args = if layout(nr).is_some_and(|l| l.paths[0].0.is_none()) {
                [0x1000, 0x2000, 0x3000, 0x4000, 0, 0]
            } else {
                args
            };
            match decode(nr, args) {
                Some(Call::Time { .. }) | Some(Call::Random { .. }) => {
                    assert!(layout(nr).is_none(), "{nr} is answered, not made")
                }
                Some(Call::Path { paths, .. }) => {
                    let l = layout(nr).unwrap_or_else(|| panic!("{nr} has a layout"));
                    let made: Vec<(i64, u64)> = l
                        .paths
                        .iter()
                        .map(|&(d, p)| {
                            (
                                d.map_or(libc::AT_FDCWD as i64, |d| args[d] as i32 as i64),
                                args[p],
                            )
                        })
                        .collect();
                    assert_eq!(made, paths, "{nr}: the paths racelab replaces are decode's");
                }
                other => panic!("{nr} decodes as {other:?}, which notification does not handle"),
            }
        }
    }

    #[test]
    fn a_path_is_resolved_from_the_programs_own_directories() {
        let me = Pid::this();
        let abs = PathArg::new(me, 5, "/etc/hostname").expect("an absolute path");
        assert_eq!(abs.path.to_str(), Ok("/etc/hostname"));
        let rel = PathArg::new(me, libc::AT_FDCWD as i64, "a/b").expect("a relative path");
        assert_eq!(
            rel.path.to_str(),
            Ok(format!("/proc/{me}/cwd/a/b").as_str())
        );
        assert!(
            PathArg::new(me, 9_999, "a").is_none(),
            "a descriptor the program does not hold is EBADF"
        );
        let dir = std::fs::File::open("/").expect("open /");
        let fd = dir.as_raw_fd() as i64;
        let empty = PathArg::new(me, fd, "").expect("an empty path on a held descriptor");
        assert!(empty.dirfd.is_some() && empty.path.as_bytes().is_empty());
        // The call made with it is the kernel's: a stat of `/` through the O_PATH descriptor.
        let mut buf = vec![0u8; std::mem::size_of::<libc::stat>()];
        let args = [0, 0, 0, libc::AT_EMPTY_PATH as u64, 0, 0];
        let r = call(
            libc::SYS_newfstatat,
            args,
            &[empty],
            Some(buf.as_mut_slice()),
        );
        assert_eq!(r, 0, "newfstatat through the O_PATH descriptor");
        let ino = u64::from_ne_bytes(buf[8..16].try_into().expect("8 bytes"));
        use std::os::unix::fs::MetadataExt;
        assert_eq!(ino, std::fs::metadata("/").expect("stat /").ino());
        let missing = PathArg::new(me, libc::AT_FDCWD as i64, "/no/such/racelab/file")
            .expect("an absolute path");
        let r = call(
            libc::SYS_newfstatat,
            [0; 6],
            &[missing],
            Some(buf.as_mut_slice()),
        );
        assert_eq!(r, -(libc::ENOENT as i64), "the kernel's errno");
    }
}
