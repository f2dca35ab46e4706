//! The gated calls that come through seccomp user notification: answered from racelab (time,
//! random bytes), let run (files outside the root), or held as steps that racelab makes itself
//! when the schedule picks them; and the waiting for either kind of event.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};

use crate::gate::notify::{self, Listener, PathArg, Reply, Request};
use crate::gate::syscalls::{decode, virtual_clock, virtual_time, Call, TimeKind};

use super::*;

/// A held notified step: the request, and the (dirfd, path) pairs the program named, to make
/// the call with when the schedule picks it.
#[derive(Debug, Clone)]
pub(super) struct HeldCall {
    req: Request,
    paths: Vec<(i64, String)>,
}

/// Wakes the driver when a ptrace event is due while it polls the listener: a thread of
/// racelab's that waits (without collecting: WNOWAIT) for the next wait status of one gated
/// thread, then writes a byte to a pipe the driver polls beside the listener. Armed once per
/// wait; the driver collects the status itself (waitpid from any thread of the tracer's group
/// sees its tracees; ptrace requests stay with the tracer thread).
pub(super) struct Waiter {
    arm: mpsc::Sender<Pid>,
    woke: OwnedFd,
    /// The thread it waits for now, if it does.
    armed: Option<Pid>,
}

impl Waiter {
    fn start() -> Result<Waiter, GateError> {
        let (woke, wake) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe2: {e}"))?;
        let (arm, armed) = mpsc::channel::<Pid>();
        std::thread::Builder::new()
            .name("racelab-gate-waiter".into())
            .spawn(move || {
                // Ends when the Tracee drops its sender.
                while let Ok(tid) = armed.recv() {
                    let flags = WaitPidFlag::WEXITED
                        | WaitPidFlag::WSTOPPED
                        | WaitPidFlag::__WALL
                        | WaitPidFlag::WNOWAIT;
                    let _ = waitid(Id::Pid(tid), flags);
                    if nix::unistd::write(&wake, &[1]).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| format!("cannot start the gate's waiter thread: {e}"))?;
        Ok(Waiter {
            arm,
            woke,
            armed: None,
        })
    }
}

impl Tracee {
    /// At the launcher's second stop: takes its listener, if the kernel made one.
    pub(super) fn take_listener(&mut self) -> Result<(), GateError> {
        if let Some(l) = Listener::take(self.pid) {
            self.listener = Some(l);
            self.waiter = Some(Waiter::start()?);
        }
        Ok(())
    }

    /// Answers or holds every notification that waits. Returns whether there was one.
    pub(super) fn receive_all(&mut self, clock: &VirtualClock) -> Result<bool, GateError> {
        let mut any = false;
        while let Some(req) = self.listener.as_ref().and_then(Listener::try_receive) {
            any = true;
            self.on_notification(req, clock)?;
        }
        Ok(any)
    }

    /// Waits for the next event of thread `t` (free, the only one): a notification from any
    /// thread, or a wait status of `t`. Returns at once if one is there.
    pub(super) fn wait_event(&mut self, t: usize, clock: &VirtualClock) -> Result<(), GateError> {
        let tid = self.threads[t].tid;
        loop {
            // Notifications first: with the gate's own calls notified, the common event.
            if self.receive_all(clock)? {
                return Ok(());
            }
            let flags = WaitPidFlag::__WALL | WaitPidFlag::WNOHANG;
            match waitpid(tid, Some(flags)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(status) => return self.on_status(t, status, clock),
                Err(Errno::ECHILD) => {
                    self.threads[t].at = ThreadAt::Gone;
                    return Ok(());
                }
                Err(e) => return Err(format!("waitpid: {e}").into()),
            }
            let (Some(listener), Some(waiter)) = (&self.listener, &mut self.waiter) else {
                return Err("waiting for notifications without a listener".into());
            };
            if waiter.armed.is_none() {
                waiter
                    .arm
                    .send(tid)
                    .map_err(|_| "the gate's waiter thread ended")?;
                waiter.armed = Some(tid);
            }
            // Armed for another thread (a program back to one thread): look again soon.
            let timeout = if waiter.armed == Some(tid) {
                PollTimeout::NONE
            } else {
                PollTimeout::from(1u8)
            };
            let mut fds = [
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(waiter.woke.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(format!("poll: {e}").into()),
            }
            let woke = fds[1]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLIN));
            if woke {
                let mut byte = [0u8; 1];
                let _ = nix::unistd::read(&waiter.woke, &mut byte);
                waiter.armed = None;
            }
        }
    }

    /// One notification: a call racelab answers, lets run, or holds as a step.
    fn on_notification(&mut self, req: Request, clock: &VirtualClock) -> Result<(), GateError> {
        let t = match self.threads.iter().position(|th| th.tid == req.tid) {
            Some(t) => t,
            None => {
                // A thread whose clone event racelab has not collected yet.
                self.threads.push(Thread::new(req.tid, true));
                self.threads.len() - 1
            }
        };
        if !self.execed {
            return self.reply(req, Reply::Continue);
        }
        let Some(call) = decode(req.nr, req.args) else {
            return self.reply(req, Reply::Continue);
        };
        // Memory that cannot be read or written belongs to a thread that died meanwhile (or
        // to a bad pointer: then the kernel's answer, EFAULT).
        let fault = -(libc::EFAULT as i64);
        match call {
            Call::Time {
                clock: id,
                buf,
                kind,
            } if virtual_clock(id) => {
                let (bytes, ret) = virtual_time(clock, id, kind);
                let written =
                    (buf == 0 && kind != TimeKind::Timespec) || self.write_mem(buf, &bytes).is_ok();
                self.reply(req, Reply::Return(if written { ret } else { fault }))
            }
            Call::Random { buf, len } => {
                let len = len.min(1 << 20);
                let mut bytes = Vec::with_capacity(len as usize);
                while (bytes.len() as u64) < len {
                    bytes.extend_from_slice(&self.next_random().to_ne_bytes());
                }
                bytes.truncate(len as usize);
                let ok = len == 0 || self.write_mem(buf, &bytes).is_ok();
                self.reply(req, Reply::Return(if ok { len as i64 } else { fault }))
            }
            Call::Path { op, paths } => {
                let mut raws = Vec::new();
                for &(dirfd, p) in &paths {
                    let raw = if p == 0 {
                        String::new()
                    } else {
                        match self.read_cstr(p) {
                            Ok(r) => r,
                            Err(_) if !self.listener_valid(req.id) => return Ok(()),
                            // A bad pointer: the kernel says EFAULT without racelab.
                            Err(_) => return self.reply(req, Reply::Continue),
                        }
                    };
                    raws.push((dirfd, raw));
                }
                match self.gated_paths(op, &raws) {
                    Gated::No => self.reply(req, Reply::Continue),
                    Gated::Fstat(fd) => self.hold_fstat(t, req, fd),
                    Gated::Step(step) => {
                        let at = Some(ThreadAt::Step(show_call(op, &step.shown)));
                        self.threads[t].pending = Some(Pending {
                            op,
                            fd: None,
                            stat_buf: None,
                            path: step.model_path,
                            paths: step.real_paths,
                        });
                        self.hold(t, req, raws, at)
                    }
                }
            }
            // statx and newfstatat with a null path: fstat, a step on a flocked descriptor.
            Call::Fd { op: "fstat", fd } if self.flocked.contains(&fd) => {
                self.hold_fstat(t, req, fd)
            }
            _ => self.reply(req, Reply::Continue),
        }
    }

    fn hold(
        &mut self,
        t: usize,
        req: Request,
        paths: Vec<(i64, String)>,
        at: Option<ThreadAt>,
    ) -> Result<(), GateError> {
        self.threads[t].held = Some(HeldCall { req, paths });
        if let Some(at) = at {
            self.threads[t].at = at;
        }
        Ok(())
    }

    /// Holds an `fstat` of flocked descriptor `fd` (its path empty or null) as a step.
    fn hold_fstat(&mut self, t: usize, req: Request, fd: i64) -> Result<(), GateError> {
        // Held first: `fd_step` then leaves the thread's registers alone.
        self.hold(t, req, vec![(fd, String::new())], None)?;
        if let Some(at) = self.fd_step(t, "fstat", fd)? {
            self.threads[t].at = at;
        }
        Ok(())
    }

    fn reply(&self, req: Request, reply: Reply) -> Result<(), GateError> {
        if let Some(l) = &self.listener {
            l.send(req.id, reply);
        }
        Ok(())
    }

    fn listener_valid(&self, id: u64) -> bool {
        self.listener.as_ref().is_some_and(|l| l.valid(id))
    }

    /// Makes a held step here: the same call, with the program's paths (resolved from its own
    /// directories) and flags; a stat's struct is written to the program with the schedule's
    /// times. Returns the result and, for a stat, the link count it read. The caller answers
    /// the notification (`reply`) once it has dated what the call changed.
    pub(super) fn make_held(&mut self, held: &HeldCall) -> Result<(i64, Option<u32>), GateError> {
        let req = held.req;
        let fault = -(libc::EFAULT as i64);
        let layout = notify::layout(req.nr).ok_or("a held call racelab cannot make")?;
        let mut args = req.args;
        let mut path_args = Vec::new();
        for (i, (dirfd, raw)) in held.paths.iter().enumerate() {
            let Some(p) = PathArg::new(self.pid, *dirfd, raw) else {
                return Ok((-(libc::EBADF as i64), None));
            };
            // A null path (statx, newfstatat of a descriptor) is the empty path.
            if raw.is_empty() && args[layout.paths[i].1] == 0 {
                let flags_at = if req.nr == libc::SYS_statx { 2 } else { 3 };
                args[flags_at] |= libc::AT_EMPTY_PATH as u64;
            }
            path_args.push(p);
        }
        let mut buf = None;
        if let Some((at, len, out)) = layout.buf {
            let ptr = req.args[at];
            if out {
                buf = Some(vec![0u8; len]);
            } else if ptr != 0 {
                match self.read_mem(ptr, len) {
                    Ok(b) if b.len() == len => buf = Some(b),
                    _ => return Ok((fault, None)),
                }
            }
        }
        let ret = notify::call(req.nr, args, &path_args, buf.as_deref_mut());
        let (Some((at, _, true)), Some(mut bytes)) = (layout.buf, buf) else {
            return Ok((ret, None));
        };
        if ret != 0 {
            return Ok((ret, None));
        }
        self.virtualize_bytes(&mut bytes, req.nr == libc::SYS_statx);
        // st_nlink: a u64 in struct stat, a u32 in struct statx, both at 16 (little-endian).
        let nlink = u32::from_le_bytes(bytes[16..20].try_into().unwrap_or_default());
        if self.write_mem(req.args[at], &bytes).is_err() {
            return Ok((fault, None));
        }
        Ok((ret, Some(nlink)))
    }

    /// Answers a held step with its result: the thread runs on, free.
    pub(super) fn answer_held(&mut self, t: usize, held: &HeldCall, ret: i64) {
        let _ = self.reply(held.req, Reply::Return(ret));
        self.notified_steps += 1;
        if self.threads[t].at != ThreadAt::Gone {
            self.threads[t].at = ThreadAt::Free;
        }
    }
}

/// What a path call is to the gate.
pub(super) enum Gated {
    /// No path under the root: it runs free.
    No,
    /// `fstat` through an empty path on a flocked descriptor: a step on the descriptor.
    Fstat(i64),
    Step(PathStep),
}

pub(super) struct PathStep {
    pub shown: Vec<String>,
    pub model_path: Option<String>,
    pub real_paths: Vec<PathBuf>,
}

impl Tracee {
    /// Whether a path call naming `raws` (dirfd, path as read) is a step, and how it shows.
    pub(super) fn gated_paths(&self, op: &'static str, raws: &[(i64, String)]) -> Gated {
        let mut step = PathStep {
            shown: Vec::new(),
            model_path: None,
            real_paths: Vec::new(),
        };
        let mut gated = false;
        for (dirfd, raw) in raws {
            // An empty path with AT_EMPTY_PATH names the descriptor itself (fstat, futimens):
            // a call on the descriptor (glibc's fstat is newfstatat(fd, "")).
            if raw.is_empty() {
                if op == "stat" && self.flocked.contains(dirfd) {
                    return Gated::Fstat(*dirfd);
                }
                continue;
            }
            let path = self.resolve(*dirfd, raw);
            match path.strip_prefix(&self.root) {
                Ok(rel) => {
                    gated = true;
                    step.model_path
                        .get_or_insert_with(|| format!("/{}", rel.display()));
                    step.shown.push(short_name(rel));
                    step.real_paths.push(path.clone());
                }
                Err(_) => step.shown.push(path.display().to_string()),
            }
        }
        if gated {
            Gated::Step(step)
        } else {
            Gated::No
        }
    }
}
