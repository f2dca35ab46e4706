//! One gated process and its threads: started under ptrace, each thread run from one gated call
//! to the next.
//!
//! A thread is either *free* (running, or idle in the kernel outside the gate: a futex, an
//! epoll with no deadline), *at a step* (a file-system call under the run's root, not yet
//! performed), *asleep* until a virtual time, in a *timed wait* (an `epoll_wait`/`poll` with a
//! timeout, parked until the virtual deadline or an event), or gone. Free threads' trapped
//! calls are answered on the way: time from the virtual clock, random bytes from a seeded
//! generator, files outside the root left alone. Threads are numbered in the order they
//! started (0 is the process itself), which a schedule's thread choices use.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::errno::Errno;
use nix::sys::ptrace::{self, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

mod calls;
mod memory;
mod notified;
mod times;

use calls::{short_name, show_call};
pub(crate) use times::{FileTimeMap, FileTimes};

use super::VirtualClock;

/// How a gated process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Exited by itself with this status.
    Exited(i32),
    /// Killed by a signal (a crash fault, or the hang watchdog).
    Killed(Signal),
}

/// What went wrong with the gate itself (not with the program), typed: a token, a refusal, a
/// skip the program asked for, or the infrastructure.
pub(crate) type GateError = racelab_core::error::Error;

/// Where one thread stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ThreadAt {
    /// Running, or blocked in the kernel outside the gate; not waited for.
    Free,
    /// At a step: the call, shown as `link(/a, /b)`, not yet made.
    Step(String),
    /// Asleep (a sleep call, held at its seccomp stop) until this virtual time (ns).
    Sleep(u64),
    /// In a wait with a timeout (`epoll_wait`, `poll`) that found nothing ready: held with its
    /// call about to run again, until this virtual time or until a probe finds an event.
    Timed(u64),
    Gone,
}

/// One thread of a gated process.
pub(crate) struct Thread {
    pub tid: Pid,
    pub at: ThreadAt,
    /// The pending step's paths and descriptor, to track descriptors it opens or closes.
    pending: Option<Pending>,
    /// Started by a clone, its first stop (the SIGSTOP every auto-attached thread starts with)
    /// not seen yet.
    fresh: bool,
    /// A timed wait held at its call: the registers to run it again with, and which argument is
    /// the timeout.
    timed: Option<(libc::user_regs_struct, usize)>,
    /// Let go from a timed wait to check for events: the deadline it keeps if none.
    probing: Option<u64>,
    /// The step it is held at came as a notification: racelab makes the call and answers it.
    held: Option<notified::HeldCall>,
}

impl Thread {
    fn new(tid: Pid, fresh: bool) -> Thread {
        Thread {
            tid,
            at: ThreadAt::Free,
            pending: None,
            fresh,
            timed: None,
            probing: None,
            held: None,
        }
    }
}

pub(crate) struct Tracee {
    pub pid: Pid,
    child: Child,
    root: PathBuf,
    mem: Option<File>,
    pub threads: Vec<Thread>,
    /// Descriptors open on files under the root, and their paths (shown root-relative).
    fds: HashMap<i64, String>,
    /// The tracked descriptors this process holds a flock through: on these, `fstat` (a lock
    /// library checking the inode it locked is still linked) and `close` (which drops the lock)
    /// are steps too.
    flocked: std::collections::HashSet<i64>,
    rng: u64,
    execed: bool,
    started: bool,
    /// Sleeps and timed waits end on multiples of this (ns; 0: exact).
    tick_ns: u64,
    times: FileTimes,
    /// The result of the last step, for the step table (`ok`, `3`, `EEXIST`).
    pub last_result: String,
    pub stderr: PathBuf,
    /// How the process ended, once it has.
    pub end: Option<Stop>,
    /// racelab's copy of the process's seccomp listener: the calls in `syscalls::NOTIFIED`
    /// come through it (`None`: every call through ptrace).
    listener: Option<crate::gate::notify::Listener>,
    waiter: Option<notified::Waiter>,
    /// The steps made through notification so far.
    pub notified_steps: usize,
}

#[derive(Debug, Clone)]
struct Pending {
    op: &'static str,
    /// The descriptor a call on one acts on (`flock` updates [`Tracee::flocked`] by it).
    fd: Option<i64>,
    /// Where an `fstat`/`stat` writes its result, and whether it is a `struct statx`.
    stat_buf: Option<(u64, bool)>,
    /// The first path (for `open`, what the new descriptor names).
    path: Option<String>,
    /// Every path under the root the call names (absolute), to date what it changed.
    paths: Vec<PathBuf>,
}

const WALL: Option<WaitPidFlag> = Some(WaitPidFlag::__WALL);

impl Tracee {
    /// Starts `argv` under the gate: the racelab binary re-executed as `__gate-exec`, stopped
    /// before the program itself runs. Output goes to files in `logs` (a full pipe would
    /// block a process racelab keeps stopped).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn spawn(
        racelab: &Path,
        argv: &[String],
        env: &[(String, String)],
        cwd: &Path,
        root: &Path,
        logs: &Path,
        seed: u64,
        tick_ns: u64,
        times: FileTimes,
        ptrace_only: bool,
    ) -> Result<Tracee, GateError> {
        let name = format!("{seed}");
        let stdout = File::create(logs.join(format!("{name}.out")))
            .map_err(|e| format!("cannot create the gated process's log: {e}"))?;
        let stderr_path = logs.join(format!("{name}.err"));
        let stderr = File::create(&stderr_path)
            .map_err(|e| format!("cannot create the gated process's log: {e}"))?;
        // Its own process group: a Ctrl-C at the terminal reaches racelab, which stops between
        // steps and reaps every gated process (PTRACE_O_EXITKILL kills them if racelab dies).
        let mut command = Command::new(racelab);
        if ptrace_only {
            command.env(crate::gate::notify::PTRACE_ONLY_ENV, "1");
        } else {
            command.env_remove(crate::gate::notify::PTRACE_ONLY_ENV);
        }
        let child = command
            .process_group(0)
            .arg("__gate-exec")
            .args(argv)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start `{}`: {e}", argv.join(" ")))?;
        let pid = Pid::from_raw(child.id() as i32);
        let mut t = Tracee {
            pid,
            child,
            root: root.to_path_buf(),
            mem: None,
            threads: vec![Thread::new(pid, false)],
            fds: HashMap::new(),
            flocked: Default::default(),
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03,
            execed: false,
            started: false,
            tick_ns,
            times,
            last_result: String::new(),
            stderr: stderr_path,
            end: None,
            listener: None,
            waiter: None,
            notified_steps: 0,
        };
        // The launcher stops itself before installing the filter; set our options then.
        match waitpid(pid, None) {
            Ok(WaitStatus::Stopped(_, Signal::SIGSTOP)) => {}
            Ok(WaitStatus::Exited(_, code)) => {
                t.gone(Stop::Exited(code));
                return Err(format!(
                    "the gate launcher exited with status {code}: {}",
                    t.stderr_tail()
                )
                .into());
            }
            other => {
                return Err(format!("the gate launcher did not stop as expected: {other:?}").into())
            }
        }
        let opts = Options::PTRACE_O_TRACESECCOMP
            | Options::PTRACE_O_TRACEEXEC
            | Options::PTRACE_O_TRACECLONE
            | Options::PTRACE_O_EXITKILL
            | Options::PTRACE_O_TRACESYSGOOD;
        ptrace::setoptions(pid, opts).map_err(|e| format!("PTRACE_SETOPTIONS: {e}"))?;
        // Its second stop, filters installed: the listener is racelab's to take. The process
        // stays stopped there until `start`.
        ptrace::cont(pid, None).map_err(|e| format!("PTRACE_CONT: {e}"))?;
        loop {
            match waitpid(pid, None) {
                Ok(WaitStatus::Stopped(_, Signal::SIGSTOP)) => break,
                Ok(WaitStatus::Exited(_, code)) => {
                    t.gone(Stop::Exited(code));
                    return Err(format!(
                        "the gate launcher exited with status {code}: {}",
                        t.stderr_tail()
                    )
                    .into());
                }
                Ok(WaitStatus::PtraceEvent(..)) => {
                    ptrace::cont(pid, None).map_err(|e| format!("PTRACE_CONT: {e}"))?
                }
                other => {
                    return Err(
                        format!("the gate launcher did not stop as expected: {other:?}").into(),
                    )
                }
            }
        }
        t.take_listener()?;
        Ok(t)
    }

    pub(crate) fn alive(&self) -> bool {
        self.end.is_none()
    }

    /// The number of threads that have not ended.
    pub(crate) fn live_threads(&self) -> usize {
        self.threads
            .iter()
            .filter(|t| t.at != ThreadAt::Gone)
            .count()
    }

    /// The last lines the process wrote to stderr, for reports.
    pub(crate) fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(6)..].join("\n")
    }

    /// SIGKILL to the whole process, now; `reap` (or the next wait) collects it.
    pub(crate) fn kill(&mut self) {
        if self.end.is_none() {
            let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
        }
    }

    /// Kills the process if it still lives and waits for every thread of it, so that nothing is
    /// left behind.
    pub(crate) fn reap(&mut self) -> Option<Stop> {
        if self.end.is_some() {
            return None;
        }
        self.kill();
        // Every other thread first: a traced group leader is reported only after them.
        let tids: Vec<Pid> = self
            .threads
            .iter()
            .filter(|t| t.at != ThreadAt::Gone && t.tid != self.pid)
            .map(|t| t.tid)
            .collect();
        for tid in tids.into_iter().chain([self.pid]) {
            loop {
                match waitpid(tid, WALL) {
                    Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) | Err(_) => break,
                    Ok(_) => {
                        let _ = ptrace::cont(tid, None);
                    }
                }
            }
        }
        let _ = self.child.wait();
        self.gone(Stop::Killed(Signal::SIGKILL));
        Some(Stop::Killed(Signal::SIGKILL))
    }

    fn gone(&mut self, how: Stop) {
        for t in &mut self.threads {
            t.at = ThreadAt::Gone;
        }
        self.end = Some(how);
    }

    /// Lets a freshly started process run on (to its exec and beyond) without waiting for it:
    /// the programs' start-ups, which touch nothing under the root, then overlap.
    pub(crate) fn start(&mut self) -> Result<(), GateError> {
        if !self.started {
            self.started = true;
            self.cont(0, None)?;
        }
        Ok(())
    }

    /// The threads at a step, in the order they started.
    pub(crate) fn ready(&self) -> Vec<usize> {
        (0..self.threads.len())
            .filter(|&i| matches!(self.threads[i].at, ThreadAt::Step(_)))
            .collect()
    }

    /// The call thread `t` is stopped at.
    pub(crate) fn call(&self, t: usize) -> String {
        match &self.threads[t].at {
            ThreadAt::Step(c) => c.clone(),
            _ => String::new(),
        }
    }

    /// The earliest virtual time a sleeping or waiting thread wakes at.
    pub(crate) fn next_wakeup(&self) -> Option<u64> {
        self.threads
            .iter()
            .filter_map(|t| match t.at {
                ThreadAt::Sleep(u) | ThreadAt::Timed(u) => Some(u),
                _ => None,
            })
            .min()
    }

    /// Wakes every thread due by the clock: a sleep returns 0, a timed wait runs once more
    /// without waiting (it finds its events, or times out as the program expects).
    pub(crate) fn wake_due(&mut self, clock: &VirtualClock) -> Result<(), GateError> {
        for t in 0..self.threads.len() {
            match self.threads[t].at {
                ThreadAt::Sleep(u) if u <= clock.now_ns() => {
                    self.skip_call(t, 0)?;
                    self.cont(t, None)?;
                }
                ThreadAt::Timed(u) if u <= clock.now_ns() => {
                    if let Some((mut regs, arg)) = self.threads[t].timed.take() {
                        set_arg(&mut regs, arg, 0);
                        ptrace::setregs(self.threads[t].tid, regs)
                            .map_err(|e| format!("PTRACE_SETREGS: {e}"))?;
                    }
                    self.cont(t, None)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Lets every timed wait run its call once more to see whether an event came (a thread of
    /// its own finished a job); a wait that finds none is held again with its deadline.
    pub(crate) fn probe_timed(&mut self) -> Result<bool, GateError> {
        let mut any = false;
        for t in 0..self.threads.len() {
            if let ThreadAt::Timed(u) = self.threads[t].at {
                self.threads[t].probing = Some(u);
                self.threads[t].timed = None;
                self.cont(t, None)?;
                any = true;
            }
        }
        Ok(any)
    }

    /// Whether nothing in this process will change without racelab: every thread is held (at a
    /// step, asleep, in a timed wait) or idle in the kernel, and no event waits to be read.
    pub(crate) fn settled(&self) -> bool {
        self.idle_signature().is_some()
    }

    /// When the process is settled, how many times each free thread has been run by the
    /// kernel so far: the states are read one thread after another, so a thread read as idle
    /// may have been woken by one read later, which went to sleep in between. Two passes with
    /// the same signature show that nobody ran in between.
    pub(crate) fn idle_signature(&self) -> Option<Vec<(i32, u64)>> {
        if self.end.is_some() {
            return Some(Vec::new());
        }
        let mut sig = Vec::new();
        for t in &self.threads {
            if t.at != ThreadAt::Free {
                continue;
            }
            if t.probing.is_some() || t.fresh || !idle(self.pid, t.tid) {
                return None;
            }
            sig.push((t.tid.as_raw(), times_run(self.pid, t.tid)));
        }
        Some(sig)
    }

    /// Performs thread `t`'s pending step and lets it run on, free.
    pub(crate) fn step(&mut self, t: usize, clock: &VirtualClock) -> Result<(), GateError> {
        self.last_result.clear();
        if !matches!(self.threads[t].at, ThreadAt::Step(_)) {
            return Err("stepped a thread that is not at a step".into());
        }
        let notified = self.threads[t].held.is_some();
        self.finish_step(t, clock)?;
        if !notified && self.threads[t].at != ThreadAt::Gone {
            self.cont(t, None)?;
        }
        Ok(())
    }

    /// Collects what happened to the free threads, without waiting: answers their free calls
    /// and holds them at steps, sleeps and timed waits. Returns whether anything happened.
    pub(crate) fn drain(&mut self, clock: &VirtualClock) -> Result<bool, GateError> {
        let mut any = false;
        let mut t = 0;
        while t < self.threads.len() {
            if self.end.is_none() && self.threads[t].at == ThreadAt::Free {
                let flags = WaitPidFlag::__WALL | WaitPidFlag::WNOHANG;
                match waitpid(self.threads[t].tid, Some(flags)) {
                    Ok(WaitStatus::StillAlive) => {}
                    Ok(status) => {
                        any = true;
                        self.on_status(t, status, clock)?;
                    }
                    Err(Errno::ECHILD) => self.threads[t].at = ThreadAt::Gone,
                    Err(e) => return Err(format!("waitpid: {e}").into()),
                }
            }
            t += 1;
        }
        if self.end.is_none() {
            any |= self.receive_all(clock)?;
        }
        Ok(any)
    }

    /// Waits for the process's one free thread to stop (the fast path of a single-threaded
    /// program: no polling). Returns early when the thread starts another.
    pub(crate) fn wait_single(&mut self, clock: &VirtualClock) -> Result<(), GateError> {
        let count = self.threads.len();
        while self.end.is_none() && self.threads.len() == count {
            let Some(t) = self.threads.iter().position(|t| t.at == ThreadAt::Free) else {
                break;
            };
            if self.listener.is_some() {
                self.wait_event(t, clock)?;
                continue;
            }
            let status = match waitpid(self.threads[t].tid, WALL) {
                Ok(s) => s,
                Err(Errno::ECHILD) => {
                    self.threads[t].at = ThreadAt::Gone;
                    continue;
                }
                Err(e) => return Err(format!("waitpid: {e}").into()),
            };
            self.on_status(t, status, clock)?;
        }
        Ok(())
    }

    /// One wait status of thread `t`.
    fn on_status(
        &mut self,
        t: usize,
        status: WaitStatus,
        clock: &VirtualClock,
    ) -> Result<(), GateError> {
        let tid = self.threads[t].tid;
        match status {
            WaitStatus::Exited(_, code) => self.thread_ended(t, Stop::Exited(code)),
            WaitStatus::Signaled(_, sig, _) => self.thread_ended(t, Stop::Killed(sig)),
            WaitStatus::PtraceEvent(_, _, ev) if ev == ptrace::Event::PTRACE_EVENT_EXEC as i32 => {
                self.on_exec()?;
                self.cont(t, None)?;
            }
            WaitStatus::PtraceEvent(_, _, ev) if ev == ptrace::Event::PTRACE_EVENT_CLONE as i32 => {
                let new = ptrace::getevent(tid).map_err(|e| format!("PTRACE_GETEVENTMSG: {e}"))?;
                let new = Pid::from_raw(new as i32);
                // (Already known if a notification of its came first.)
                if !self.threads.iter().any(|t| t.tid == new) {
                    self.threads.push(Thread::new(new, true));
                }
                self.cont(t, None)?;
            }
            WaitStatus::PtraceEvent(_, _, ev)
                if ev == ptrace::Event::PTRACE_EVENT_SECCOMP as i32 =>
            {
                if !self.execed {
                    // The launcher's own calls between its filter and exec.
                    self.cont(t, None)?;
                } else if let Some(at) = self.on_call(t, clock)? {
                    self.threads[t].at = at;
                }
            }
            WaitStatus::Stopped(_, Signal::SIGSTOP) if self.threads[t].fresh => {
                self.threads[t].fresh = false;
                self.cont(t, None)?;
            }
            WaitStatus::Stopped(_, sig) => self.cont(t, Some(sig))?,
            _ => self.cont(t, None)?,
        }
        Ok(())
    }

    fn thread_ended(&mut self, t: usize, how: Stop) {
        if self.threads[t].tid == self.pid {
            let _ = self.child.wait();
            self.gone(how);
        } else {
            self.threads[t].at = ThreadAt::Gone;
        }
    }

    fn cont(&mut self, t: usize, sig: Option<Signal>) -> Result<(), GateError> {
        self.threads[t].at = ThreadAt::Free;
        match ptrace::cont(self.threads[t].tid, sig) {
            Ok(()) => Ok(()),
            // Killed meanwhile (exit_group from another thread): its exit is collected next.
            Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(format!("PTRACE_CONT: {e}").into()),
        }
    }
}

/// The kernel's coarse wall clock (what it stamps files with), in ns since 1970.
pub(crate) fn coarse_now_ns() -> i128 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME_COARSE)
        .map(|t| t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128)
        .unwrap_or(0)
}

/// Sets argument `n` (0-based, x86_64 system call convention) of a call.
fn set_arg(regs: &mut libc::user_regs_struct, n: usize, value: u64) {
    match n {
        0 => regs.rdi = value,
        1 => regs.rsi = value,
        2 => regs.rdx = value,
        3 => regs.r10 = value,
        4 => regs.r8 = value,
        _ => regs.r9 = value,
    }
}

/// How many times the kernel has put thread `tid` on a CPU (`/proc/.../schedstat`, third field;
/// 0 where the kernel does not keep it).
fn times_run(pid: Pid, tid: Pid) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(2).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Whether thread `tid` sleeps in the kernel (state `S`): idle outside the gate until something
/// wakes it (or a group leader that is done while its threads run on, `Z`). Running (`R`), in disk wait (`D`) or stopped with an event not collected yet
/// (`t`) is not idle.
fn idle(pid: Pid, tid: Pid) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")) else {
        return false;
    };
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .is_some_and(|c| c == 'S' || c == 'Z')
}

impl Drop for Tracee {
    fn drop(&mut self) {
        self.reap();
    }
}
