//! The system calls the gate traps (x86_64), and what each one is to a schedule.
//!
//! Only calls on files under the run's root are *steps*; the same calls elsewhere (Python
//! reading its own modules, say) run free. Time and randomness are answered by racelab itself,
//! so that a run depends on nothing but its schedule.

/// Every system call the seccomp filter stops. Anything else runs at full speed, untraced.
pub const TRAPPED: &[i64] = &[
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_creat,
    libc::SYS_link,
    libc::SYS_linkat,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_rmdir,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_utime,
    libc::SYS_utimes,
    libc::SYS_utimensat,
    libc::SYS_futimesat,
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_close,
    libc::SYS_dup,
    libc::SYS_dup2,
    libc::SYS_dup3,
    libc::SYS_fcntl,
    libc::SYS_flock,
    libc::SYS_fstat,
    libc::SYS_clock_gettime,
    libc::SYS_gettimeofday,
    libc::SYS_time,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_getrandom,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_poll,
    libc::SYS_fork,
    libc::SYS_vfork,
    libc::SYS_clone,
    libc::SYS_clone3,
];

/// The trapped calls that go through seccomp user notification instead of ptrace stops, when
/// the kernel gives the launcher a listener: racelab answers them without running them (time,
/// random bytes), lets them run (SECCOMP_USER_NOTIF_FLAG_CONTINUE: files outside the root), or
/// holds them as steps and makes them itself (`notify::call`: the same call, with the
/// program's paths resolved from its own directory, and the result the kernel gave racelab).
/// Each is a call whose emulation is exact for a program of racelab's own user: `mkdir`
/// (the program's umask, not racelab's, would apply), `open` (the descriptor must be the
/// program's), descriptor calls, sleeps, waits and clones stay on ptrace (docs/design-decisions.md,
/// "Seccomp user notification").
pub const NOTIFIED: &[i64] = &[
    libc::SYS_link,
    libc::SYS_linkat,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_rmdir,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_utime,
    libc::SYS_utimes,
    libc::SYS_utimensat,
    libc::SYS_futimesat,
    libc::SYS_clock_gettime,
    libc::SYS_gettimeofday,
    libc::SYS_time,
    libc::SYS_getrandom,
];

/// A trapped call, decoded from the registers at its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// A call that names files: `paths` are (dirfd, path pointer) pairs still to be read.
    Path {
        op: &'static str,
        paths: Vec<(i64, u64)>,
    },
    /// read/write/close/fstat/flock on a file descriptor (`flock` is LOCK_EX or LOCK_SH, with
    /// or without LOCK_NB; `flock-un` is LOCK_UN).
    Fd { op: &'static str, fd: i64 },
    /// A copy of descriptor `fd` (dup, dup2, dup3, fcntl F_DUPFD): tracked like the original.
    Dup { fd: i64 },
    /// What time is it: `clock` (or -1 for gettimeofday, -2 for time), into `buf`.
    Time {
        clock: i64,
        buf: u64,
        kind: TimeKind,
    },
    /// Sleep: relative (`abs` false) or until an absolute time on `clock`, read from `req`.
    Sleep { clock: i64, req: u64, abs: bool },
    /// Random bytes, `len` of them into `buf`.
    Random { buf: u64, len: u64 },
    /// A wait for events with a timeout in milliseconds (argument `arg`): `epoll_wait`,
    /// `epoll_pwait`, `poll`. Negative waits for ever, 0 not at all.
    Wait { timeout_ms: i32, arg: usize },
    /// `clone` with these flags, or `clone3` (`None`: the flags are in the struct it points to):
    /// a thread (CLONE_THREAD), which the gate follows, or a process, which it refuses.
    Clone { flags: Option<u64> },
    /// fork or vfork: a new process, which the gate does not follow.
    Spawn,
    /// Trapped, but nothing to the gate (fcntl other than F_DUPFD).
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeKind {
    Timespec,
    Timeval,
    Seconds,
}

const AT_FDCWD: i64 = libc::AT_FDCWD as i64;

/// Decodes syscall `nr` with arguments `a`. `None`: not a trapped call (cannot happen with the
/// gate's own filter).
pub fn decode(nr: i64, a: [u64; 6]) -> Option<Call> {
    let path = |op, dirfd: i64, p: u64| Call::Path {
        op,
        paths: vec![(dirfd, p)],
    };
    let two = |op, d1: i64, p1: u64, d2: i64, p2: u64| Call::Path {
        op,
        paths: vec![(d1, p1), (d2, p2)],
    };
    let fd = |op, fd: u64| Call::Fd {
        op,
        fd: fd as i32 as i64,
    };
    Some(match nr {
        libc::SYS_open | libc::SYS_creat => path("open", AT_FDCWD, a[0]),
        libc::SYS_openat => path("open", a[0] as i32 as i64, a[1]),
        libc::SYS_link => two("link", AT_FDCWD, a[0], AT_FDCWD, a[1]),
        libc::SYS_linkat => two("link", a[0] as i32 as i64, a[1], a[2] as i32 as i64, a[3]),
        libc::SYS_unlink => path("unlink", AT_FDCWD, a[0]),
        libc::SYS_unlinkat => path(
            if a[2] as i32 & libc::AT_REMOVEDIR != 0 {
                "rmdir"
            } else {
                "unlink"
            },
            a[0] as i32 as i64,
            a[1],
        ),
        libc::SYS_rename => two("rename", AT_FDCWD, a[0], AT_FDCWD, a[1]),
        libc::SYS_renameat | libc::SYS_renameat2 => {
            two("rename", a[0] as i32 as i64, a[1], a[2] as i32 as i64, a[3])
        }
        libc::SYS_mkdir => path("mkdir", AT_FDCWD, a[0]),
        libc::SYS_mkdirat => path("mkdir", a[0] as i32 as i64, a[1]),
        libc::SYS_rmdir => path("rmdir", AT_FDCWD, a[0]),
        libc::SYS_stat | libc::SYS_lstat => path("stat", AT_FDCWD, a[0]),
        libc::SYS_newfstatat | libc::SYS_statx if a[1] == 0 => fd("fstat", a[0]),
        libc::SYS_newfstatat | libc::SYS_statx => path("stat", a[0] as i32 as i64, a[1]),
        libc::SYS_utime | libc::SYS_utimes => path("utime", AT_FDCWD, a[0]),
        libc::SYS_utimensat | libc::SYS_futimesat if a[1] == 0 => fd("futime", a[0]),
        libc::SYS_utimensat | libc::SYS_futimesat => path("utime", a[0] as i32 as i64, a[1]),
        libc::SYS_read | libc::SYS_pread64 => fd("read", a[0]),
        libc::SYS_write | libc::SYS_pwrite64 => fd("write", a[0]),
        libc::SYS_close => fd("close", a[0]),
        libc::SYS_fstat => fd("fstat", a[0]),
        libc::SYS_flock if a[1] as i32 & libc::LOCK_UN != 0 => fd("flock-un", a[0]),
        libc::SYS_flock => fd("flock", a[0]),
        libc::SYS_dup | libc::SYS_dup2 | libc::SYS_dup3 => Call::Dup {
            fd: a[0] as i32 as i64,
        },
        libc::SYS_fcntl if matches!(a[1] as i32, libc::F_DUPFD | libc::F_DUPFD_CLOEXEC) => {
            Call::Dup {
                fd: a[0] as i32 as i64,
            }
        }
        libc::SYS_fcntl => Call::Other,
        libc::SYS_clock_gettime => Call::Time {
            clock: a[0] as i64,
            buf: a[1],
            kind: TimeKind::Timespec,
        },
        libc::SYS_gettimeofday => Call::Time {
            clock: -1,
            buf: a[0],
            kind: TimeKind::Timeval,
        },
        libc::SYS_time => Call::Time {
            clock: -2,
            buf: a[0],
            kind: TimeKind::Seconds,
        },
        libc::SYS_nanosleep => Call::Sleep {
            clock: libc::CLOCK_MONOTONIC as i64,
            req: a[0],
            abs: false,
        },
        libc::SYS_clock_nanosleep => Call::Sleep {
            clock: a[0] as i64,
            req: a[2],
            abs: a[1] as i32 & libc::TIMER_ABSTIME != 0,
        },
        libc::SYS_getrandom => Call::Random {
            buf: a[0],
            len: a[1],
        },
        libc::SYS_epoll_wait | libc::SYS_epoll_pwait => Call::Wait {
            timeout_ms: a[3] as i32,
            arg: 3,
        },
        libc::SYS_poll => Call::Wait {
            timeout_ms: a[2] as i32,
            arg: 2,
        },
        libc::SYS_clone => Call::Clone { flags: Some(a[0]) },
        libc::SYS_clone3 => Call::Clone { flags: None },
        libc::SYS_fork | libc::SYS_vfork => Call::Spawn,
        _ => return None,
    })
}

/// Whether `clock` is one the gate virtualizes (wall and monotonic clocks; CPU-time clocks run
/// free, since they measure work, not time).
pub(crate) fn virtual_clock(clock: i64) -> bool {
    matches!(
        clock as i32,
        libc::CLOCK_REALTIME
            | libc::CLOCK_MONOTONIC
            | libc::CLOCK_MONOTONIC_RAW
            | libc::CLOCK_REALTIME_COARSE
            | libc::CLOCK_MONOTONIC_COARSE
            | libc::CLOCK_BOOTTIME
            | libc::CLOCK_TAI
    ) || clock < 0
}

/// What a read of virtual clock `clock` answers now: the bytes for its buffer (a timespec, a
/// timeval, or time(2)'s seconds) and the call's return value. One place for the ptrace and the
/// notified paths, so both give a program the same times.
pub(crate) fn virtual_time(
    now: &crate::gate::VirtualClock,
    clock: i64,
    kind: TimeKind,
) -> (Vec<u8>, i64) {
    let ns = if wall_clock(clock) {
        now.wall_ns()
    } else {
        now.monotonic_ns()
    };
    let (sec, sub) = ((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64);
    match kind {
        TimeKind::Timespec => ([sec.to_ne_bytes(), sub.to_ne_bytes()].concat(), 0),
        TimeKind::Timeval => ([sec.to_ne_bytes(), (sub / 1000).to_ne_bytes()].concat(), 0),
        TimeKind::Seconds => (sec.to_ne_bytes().to_vec(), sec),
    }
}

/// Whether `clock` counts from the epoch (wall clocks) rather than from boot.
pub(crate) fn wall_clock(clock: i64) -> bool {
    matches!(
        clock as i32,
        libc::CLOCK_REALTIME | libc::CLOCK_REALTIME_COARSE | libc::CLOCK_TAI
    ) || clock < 0
}
