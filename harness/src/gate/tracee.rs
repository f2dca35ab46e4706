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
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::errno::Errno;
use nix::sys::ptrace::{self, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::syscalls::{decode, virtual_clock, wall_clock, Call, TimeKind};
use super::VirtualClock;

/// How a gated process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Exited by itself with this status.
    Exited(i32),
    /// Killed by a signal (a crash fault, or the hang watchdog).
    Killed(Signal),
}

/// What went wrong with the gate itself (not with the program), typed: a token, a refusal, a
/// skip the program asked for, or the infrastructure.
pub type GateError = crate::error::Error;

/// Where one thread stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadAt {
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
pub struct Thread {
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
        }
    }
}

/// File times the gated programs made, as virtual times: `(inode, seconds, nanoseconds)` of a
/// real timestamp a step left on a file, to the virtual wall time (ns) of that step. A program
/// that compares a file's ctime with its clock (npm's lockfile) then sees the times of the
/// schedule, not of the machine.
pub type FileTimes = std::rc::Rc<std::cell::RefCell<FileTimeMap>>;

#[derive(Debug, Default)]
pub struct FileTimeMap {
    pub stamps: HashMap<(u64, i64, i64), u64>,
    /// Per inode, the steps that may have changed its times: (real coarse time before the
    /// step, virtual wall time of the step). An unlink of one of an inode's names changes its
    /// ctime, but the name is gone before racelab can read it: such a time is dated by the
    /// last step on the inode that began before it.
    pub events: HashMap<u64, Vec<(i128, u64)>>,
    /// Real time (ns since 1970) when the run's files were made: kernel timestamps from then on
    /// that no step claims (the scenario's `fs` entries) read as the run's start.
    pub since_ns: i128,
    /// The virtual wall clock at the run's start.
    pub start_wall_ns: u64,
}

impl FileTimeMap {
    /// The virtual time a real timestamp stands for, or `None` to leave it (a time the program
    /// set itself with utime, outside the run's real time).
    fn virtual_of(&self, ino: u64, sec: i64, nsec: i64) -> Option<u64> {
        if let Some(v) = self.stamps.get(&(ino, sec, nsec)) {
            return Some(*v);
        }
        let real = sec as i128 * 1_000_000_000 + nsec as i128;
        if let Some(&(_, v)) = self
            .events
            .get(&ino)
            .and_then(|e| e.iter().rev().find(|(before, _)| *before <= real))
        {
            return Some(v);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        // Kernel timestamps are coarse (a tick behind): a little slack either side.
        (real >= self.since_ns - 50_000_000 && real <= now + 50_000_000)
            .then_some(self.start_wall_ns)
    }
}

pub struct Tracee {
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
    pub fn spawn(
        racelab: &Path,
        argv: &[String],
        env: &[(String, String)],
        cwd: &Path,
        root: &Path,
        logs: &Path,
        seed: u64,
        tick_ns: u64,
        times: FileTimes,
    ) -> Result<Tracee, GateError> {
        let name = format!("{seed}");
        let stdout = File::create(logs.join(format!("{name}.out")))
            .map_err(|e| format!("cannot create the gated process's log: {e}"))?;
        let stderr_path = logs.join(format!("{name}.err"));
        let stderr = File::create(&stderr_path)
            .map_err(|e| format!("cannot create the gated process's log: {e}"))?;
        // Its own process group: a Ctrl-C at the terminal reaches racelab, which stops between
        // steps and reaps every gated process (PTRACE_O_EXITKILL kills them if racelab dies).
        let child = Command::new(racelab)
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
        Ok(t)
    }

    pub fn alive(&self) -> bool {
        self.end.is_none()
    }

    /// The number of threads that have not ended.
    pub fn live_threads(&self) -> usize {
        self.threads
            .iter()
            .filter(|t| t.at != ThreadAt::Gone)
            .count()
    }

    /// The last lines the process wrote to stderr, for reports.
    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(6)..].join("\n")
    }

    /// SIGKILL to the whole process, now; `reap` (or the next wait) collects it.
    pub fn kill(&mut self) {
        if self.end.is_none() {
            let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
        }
    }

    /// Kills the process if it still lives and waits for every thread of it, so that nothing is
    /// left behind.
    pub fn reap(&mut self) -> Option<Stop> {
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
    pub fn start(&mut self) -> Result<(), GateError> {
        if !self.started {
            self.started = true;
            self.cont(0, None)?;
        }
        Ok(())
    }

    /// The threads at a step, in the order they started.
    pub fn ready(&self) -> Vec<usize> {
        (0..self.threads.len())
            .filter(|&i| matches!(self.threads[i].at, ThreadAt::Step(_)))
            .collect()
    }

    /// The call thread `t` is stopped at.
    pub fn call(&self, t: usize) -> String {
        match &self.threads[t].at {
            ThreadAt::Step(c) => c.clone(),
            _ => String::new(),
        }
    }

    /// The earliest virtual time a sleeping or waiting thread wakes at.
    pub fn next_wakeup(&self) -> Option<u64> {
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
    pub fn wake_due(&mut self, clock: &VirtualClock) -> Result<(), GateError> {
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
    pub fn probe_timed(&mut self) -> Result<bool, GateError> {
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
    pub fn settled(&self) -> bool {
        self.idle_signature().is_some()
    }

    /// When the process is settled, how many times each free thread has been run by the
    /// kernel so far: the states are read one thread after another, so a thread read as idle
    /// may have been woken by one read later, which went to sleep in between. Two passes with
    /// the same signature show that nobody ran in between.
    pub fn idle_signature(&self) -> Option<Vec<(i32, u64)>> {
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
    pub fn step(&mut self, t: usize, clock: &VirtualClock) -> Result<(), GateError> {
        self.last_result.clear();
        if !matches!(self.threads[t].at, ThreadAt::Step(_)) {
            return Err("stepped a thread that is not at a step".into());
        }
        self.finish_step(t, clock)?;
        if self.threads[t].at != ThreadAt::Gone {
            self.cont(t, None)?;
        }
        Ok(())
    }

    /// Collects what happened to the free threads, without waiting: answers their free calls
    /// and holds them at steps, sleeps and timed waits. Returns whether anything happened.
    pub fn drain(&mut self, clock: &VirtualClock) -> Result<bool, GateError> {
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
        Ok(any)
    }

    /// Waits for the process's one free thread to stop (the fast path of a single-threaded
    /// program: no polling). Returns early when the thread starts another.
    pub fn wait_single(&mut self, clock: &VirtualClock) -> Result<(), GateError> {
        let count = self.threads.len();
        while self.end.is_none() && self.threads.len() == count {
            let Some(t) = self.threads.iter().position(|t| t.at == ThreadAt::Free) else {
                break;
            };
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
                self.threads
                    .push(Thread::new(Pid::from_raw(new as i32), true));
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

    /// A trapped call of thread `t`: answer it here (and return `None`), or hold the thread at
    /// it (and return where it is held).
    fn on_call(&mut self, t: usize, clock: &VirtualClock) -> Result<Option<ThreadAt>, GateError> {
        let tid = self.threads[t].tid;
        let regs = ptrace::getregs(tid).map_err(|e| format!("PTRACE_GETREGS: {e}"))?;
        let args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9];
        let Some(call) = decode(regs.orig_rax as i64, args) else {
            self.cont(t, None)?;
            return Ok(None);
        };
        match call {
            Call::Path { op, paths } => {
                let mut shown = Vec::new();
                let mut gated = false;
                let mut model_path = None;
                let mut real_paths = Vec::new();
                for (dirfd, p) in paths {
                    // An empty path with AT_EMPTY_PATH names the descriptor itself (fstat,
                    // futimens): a call on the descriptor (glibc's fstat is newfstatat(fd, "")).
                    let raw = if p == 0 {
                        String::new()
                    } else {
                        self.read_cstr(p)?
                    };
                    if raw.is_empty() {
                        if op == "stat" && self.flocked.contains(&dirfd) {
                            return self.fd_step(t, "fstat", dirfd);
                        }
                        continue;
                    }
                    let path = self.resolve(dirfd, &raw);
                    match path.strip_prefix(&self.root) {
                        Ok(rel) => {
                            gated = true;
                            model_path.get_or_insert_with(|| format!("/{}", rel.display()));
                            shown.push(short_name(rel));
                            real_paths.push(path.clone());
                        }
                        Err(_) => shown.push(path.display().to_string()),
                    }
                }
                if !gated {
                    self.cont(t, None)?;
                    return Ok(None);
                }
                let stat_buf = match regs.orig_rax as i64 {
                    _ if op != "stat" => None,
                    libc::SYS_stat | libc::SYS_lstat => Some((regs.rsi, false)),
                    libc::SYS_newfstatat => Some((regs.rdx, false)),
                    libc::SYS_statx => Some((regs.r8, true)),
                    _ => None,
                };
                self.threads[t].pending = Some(Pending {
                    op,
                    fd: None,
                    stat_buf,
                    path: model_path,
                    paths: real_paths,
                });
                Ok(Some(ThreadAt::Step(show_call(op, &shown))))
            }
            Call::Fd { op, fd } => {
                if !self.fds.contains_key(&fd) {
                    self.cont(t, None)?;
                    return Ok(None);
                }
                let locked = self.flocked.contains(&fd);
                if matches!(op, "close" | "fstat" | "futime") && !locked {
                    // Not steps: they change nothing another process can see on a local
                    // filesystem (NFS flushes on close; its writes were steps already).
                    if op == "close" {
                        self.fds.remove(&fd);
                    }
                    self.cont(t, None)?;
                    return Ok(None);
                }
                if op == "futime" {
                    self.cont(t, None)?;
                    return Ok(None);
                }
                self.fd_step(t, op, fd)
            }
            Call::Time {
                clock: id,
                buf,
                kind,
            } if virtual_clock(id) => {
                let ns = if wall_clock(id) {
                    clock.wall_ns()
                } else {
                    clock.monotonic_ns()
                };
                let (sec, sub) = ((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64);
                let ret = match kind {
                    TimeKind::Timespec => {
                        self.write_mem(buf, &[sec.to_ne_bytes(), sub.to_ne_bytes()].concat())?;
                        0
                    }
                    TimeKind::Timeval => {
                        if buf != 0 {
                            self.write_mem(
                                buf,
                                &[sec.to_ne_bytes(), (sub / 1000).to_ne_bytes()].concat(),
                            )?;
                        }
                        0
                    }
                    TimeKind::Seconds => {
                        if buf != 0 {
                            self.write_mem(buf, &sec.to_ne_bytes())?;
                        }
                        sec
                    }
                };
                self.skip_call(t, ret)?;
                self.cont(t, None)?;
                Ok(None)
            }
            Call::Time { .. } => {
                self.cont(t, None)?;
                Ok(None)
            }
            Call::Sleep {
                clock: id,
                req,
                abs,
            } if virtual_clock(id) => {
                let b = self.read_mem(req, 16)?;
                let sec = i64::from_ne_bytes(b[..8].try_into().unwrap_or_default());
                let nsec = i64::from_ne_bytes(b[8..].try_into().unwrap_or_default());
                let d = (sec.max(0) as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(nsec.max(0) as u64);
                let until = if !abs {
                    clock.now_ns().saturating_add(d)
                } else if wall_clock(id) {
                    d.saturating_sub(clock.wall_ns() - clock.now_ns())
                } else {
                    d.saturating_sub(clock.monotonic_ns() - clock.now_ns())
                };
                Ok(Some(ThreadAt::Sleep(
                    self.on_tick(until.max(clock.now_ns())),
                )))
            }
            Call::Sleep { .. } => {
                self.cont(t, None)?;
                Ok(None)
            }
            Call::Wait { timeout_ms, arg } if timeout_ms > 0 => {
                // A wait with a deadline: look once without waiting; if nothing is ready, hold
                // the thread with its call about to run again, until the virtual deadline.
                let until = match self.threads[t].probing.take() {
                    Some(u) => u,
                    None => {
                        self.on_tick(clock.now_ns().saturating_add(timeout_ms as u64 * 1_000_000))
                    }
                };
                let mut entry = regs;
                let mut now = regs;
                set_arg(&mut now, arg, 0);
                ptrace::setregs(tid, now).map_err(|e| format!("PTRACE_SETREGS: {e}"))?;
                let ret = self.run_to_exit(t)?;
                if self.threads[t].at == ThreadAt::Gone {
                    return Ok(None);
                }
                if ret != 0 {
                    self.cont(t, None)?;
                    return Ok(None);
                }
                // Back to the `syscall` instruction (two bytes), the call's number in rax.
                entry.rip -= 2;
                entry.rax = entry.orig_rax;
                ptrace::setregs(tid, entry).map_err(|e| format!("PTRACE_SETREGS: {e}"))?;
                self.threads[t].timed = Some((entry, arg));
                Ok(Some(ThreadAt::Timed(until)))
            }
            Call::Wait { .. } => {
                self.threads[t].probing = None;
                self.cont(t, None)?;
                Ok(None)
            }
            Call::Random { buf, len } => {
                let len = len.min(1 << 20);
                let mut bytes = Vec::with_capacity(len as usize);
                while (bytes.len() as u64) < len {
                    bytes.extend_from_slice(&self.next_random().to_ne_bytes());
                }
                bytes.truncate(len as usize);
                self.write_mem(buf, &bytes)?;
                self.skip_call(t, len as i64)?;
                self.cont(t, None)?;
                Ok(None)
            }
            Call::Dup { fd } => {
                // dup2(3, 1): the copy writes to the same file, so it is tracked too.
                if let Some(path) = self.fds.get(&fd).cloned() {
                    let newfd = self.run_to_exit(t)?;
                    if self.threads[t].at == ThreadAt::Gone {
                        return Ok(None);
                    }
                    if newfd >= 0 {
                        self.fds.insert(newfd, path);
                    }
                } else if matches!(regs.orig_rax as i64, libc::SYS_dup2 | libc::SYS_dup3) {
                    // dup2(other, tracked): the tracked descriptor now names another file.
                    self.fds.remove(&(regs.rsi as i32 as i64));
                }
                self.cont(t, None)?;
                Ok(None)
            }
            Call::Other => {
                self.cont(t, None)?;
                Ok(None)
            }
            Call::Clone { flags } => {
                // clone3 passes its flags in a struct; its first field.
                let flags = match flags {
                    Some(f) => f,
                    None => u64::from_ne_bytes(
                        self.read_mem(regs.rdi, 8)?.try_into().unwrap_or_default(),
                    ),
                };
                if flags & libc::CLONE_THREAD as u64 != 0 {
                    // A thread: PTRACE_O_TRACECLONE attaches it; it becomes a schedulable
                    // unit of this actor.
                    self.cont(t, None)?;
                    Ok(None)
                } else {
                    Err(Self::refuse_process())
                }
            }
            Call::Spawn => Err(Self::refuse_process()),
        }
    }

    fn refuse_process() -> GateError {
        crate::error::Error::refused("the gated program started a process (fork, vfork or clone without CLONE_THREAD); the gate follows the threads of one process per actor, not child processes: run the child as an actor of its own, or gate a program that does not fork (docs/language.md, \"The gate\")")
    }

    /// `until`, rounded up to the tick: sleeps that end within one tick wake together.
    fn on_tick(&self, until: u64) -> u64 {
        if self.tick_ns > 0 {
            until.div_ceil(self.tick_ns) * self.tick_ns
        } else {
            until
        }
    }

    /// Stops at a call on tracked descriptor `fd` as a step.
    fn fd_step(
        &mut self,
        t: usize,
        op: &'static str,
        fd: i64,
    ) -> Result<Option<ThreadAt>, GateError> {
        let path = self.fds.get(&fd).cloned().unwrap_or_default();
        let shown = short_name(Path::new(path.trim_start_matches('/')));
        let stat_buf = if op == "fstat" {
            let regs =
                ptrace::getregs(self.threads[t].tid).map_err(|e| format!("PTRACE_GETREGS: {e}"))?;
            match regs.orig_rax as i64 {
                libc::SYS_fstat => Some((regs.rsi, false)),
                libc::SYS_newfstatat => Some((regs.rdx, false)),
                libc::SYS_statx => Some((regs.r8, true)),
                _ => None,
            }
        } else {
            None
        };
        let real = self.root.join(path.trim_start_matches('/'));
        self.threads[t].pending = Some(Pending {
            op,
            fd: Some(fd),
            stat_buf,
            path: Some(path),
            paths: vec![real],
        });
        Ok(Some(ThreadAt::Step(show_call(op, &[shown]))))
    }

    /// Performs the pending step: the call runs, we read its result at the syscall exit.
    fn finish_step(&mut self, t: usize, clock: &VirtualClock) -> Result<(), GateError> {
        // The inodes the step may change (an unlink leaves no name to read them by after).
        let touched: Vec<u64> = match &self.threads[t].pending {
            Some(p) if !matches!(p.op, "stat" | "fstat" | "read") => {
                use std::os::unix::fs::MetadataExt;
                p.paths
                    .iter()
                    .flat_map(|q| [Some(q.as_path()), q.parent()])
                    .flatten()
                    .filter_map(|q| std::fs::symlink_metadata(q).ok().map(|m| m.ino()))
                    .collect()
            }
            _ => Vec::new(),
        };
        let before = coarse_now_ns();
        let ret = self.run_to_exit(t)?;
        if self.threads[t].at == ThreadAt::Gone {
            return Ok(());
        }
        let pending = self.threads[t].pending.take();
        self.last_result = if ret < 0 {
            nix::errno::Errno::from_raw(-ret as i32)
                .to_string()
                .split(':')
                .next()
                .unwrap_or("error")
                .to_string()
        } else {
            match pending.as_ref().map(|p| p.op) {
                Some("read") | Some("write") => format!("{ret} bytes"),
                Some("open") => format!("fd {ret}"),
                // The link count the program read: 0 once the inode it locked lost its last name.
                Some("fstat") => match pending.as_ref().and_then(|p| p.stat_buf) {
                    Some((buf, _)) => self
                        .stat_nlink(buf)
                        .map_or("ok".into(), |n| format!("nlink {n}")),
                    None => "ok".into(),
                },
                _ => "ok".into(),
            }
        };
        if let Some(p) = &pending {
            if ret >= 0 {
                self.date_files(p, before, &touched, clock)?;
            }
        }
        if let Some(p) = pending {
            match (p.op, p.fd) {
                ("flock", Some(fd)) if ret == 0 => {
                    self.flocked.insert(fd);
                }
                ("flock-un", Some(fd)) => {
                    self.flocked.remove(&fd);
                }
                ("close", Some(fd)) => {
                    // Closed, even when close reports an error (EINTR, EIO): the number is free.
                    self.flocked.remove(&fd);
                    self.fds.remove(&fd);
                }
                _ => {}
            }
            if p.op == "open" && ret >= 0 {
                if let Some(path) = p.path {
                    self.fds.insert(ret, path);
                }
            }
        }
        Ok(())
    }

    /// After a step: a `stat` shows the file times the schedule gave them; a call that changed
    /// files has the real times it left on them (and on their directory) dated with the clock.
    fn date_files(
        &mut self,
        p: &Pending,
        before_ns: i128,
        touched: &[u64],
        clock: &VirtualClock,
    ) -> Result<(), GateError> {
        if matches!(p.op, "stat" | "fstat") {
            if let Some((buf, statx)) = p.stat_buf {
                self.virtualize_stat(buf, statx)?;
            }
            return Ok(());
        }
        use std::os::unix::fs::MetadataExt;
        let mut map = self.times.borrow_mut();
        for ino in touched {
            map.events
                .entry(*ino)
                .or_default()
                .push((before_ns, clock.wall_ns()));
        }
        for path in &p.paths {
            for q in [Some(path.as_path()), path.parent()].into_iter().flatten() {
                let Ok(m) = std::fs::symlink_metadata(q) else {
                    continue;
                };
                let mut stamps = vec![(m.ctime(), m.ctime_nsec())];
                // A utime's mtime is the program's own value, not the machine's.
                if p.op != "utime" || q != path.as_path() {
                    stamps.push((m.mtime(), m.mtime_nsec()));
                }
                for (sec, nsec) in stamps {
                    if sec as i128 * 1_000_000_000 + nsec as i128 >= before_ns {
                        map.stamps.insert((m.ino(), sec, nsec), clock.wall_ns());
                        if !touched.contains(&m.ino()) {
                            map.events
                                .entry(m.ino())
                                .or_default()
                                .push((before_ns, clock.wall_ns()));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Rewrites the access, change, modification (and birth) times of a `struct stat` or
    /// `struct statx` the program just read into virtual times. The struct is read in one
    /// access to the program's memory and the changed span written back in one (field by field
    /// it took up to 13 system calls per `stat` step: the gate's largest share of a step's cost
    /// after the two ptrace stops).
    fn virtualize_stat(&self, buf: u64, statx: bool) -> Result<(), GateError> {
        // (inode, [(seconds, nanoseconds)] offsets, bytes to read) on x86_64; statx's
        // nanoseconds are a u32, struct stat's an i64.
        let (ino_at, fields, len): (usize, &[(usize, usize)], usize) = if statx {
            (
                0x20,
                &[(0x40, 0x48), (0x50, 0x58), (0x60, 0x68), (0x70, 0x78)],
                0x80,
            )
        } else {
            (8, &[(72, 80), (88, 96), (104, 112)], 120)
        };
        let mut bytes = self.read_mem(buf, len)?;
        if bytes.len() < len {
            return Err(format!(
                "reading the gated process's stat buffer at {buf:#x}: only {} of {len} bytes",
                bytes.len()
            )
            .into());
        }
        let word =
            |b: &[u8], at: usize| i64::from_ne_bytes(b[at..at + 8].try_into().unwrap_or_default());
        let ino = word(&bytes, ino_at) as u64;
        let map = self.times.borrow();
        let mut changed: Option<(usize, usize)> = None;
        for &(sec_at, nsec_at) in fields {
            let sec = word(&bytes, sec_at);
            let nsec = if statx {
                u32::from_ne_bytes(bytes[nsec_at..nsec_at + 4].try_into().unwrap_or_default())
                    as i64
            } else {
                word(&bytes, nsec_at)
            };
            let Some(v) = map.virtual_of(ino, sec, nsec) else {
                continue;
            };
            let (vs, vn) = ((v / 1_000_000_000) as i64, (v % 1_000_000_000) as i64);
            bytes[sec_at..sec_at + 8].copy_from_slice(&vs.to_ne_bytes());
            let nsec_end = if statx {
                bytes[nsec_at..nsec_at + 4].copy_from_slice(&(vn as u32).to_ne_bytes());
                nsec_at + 4
            } else {
                bytes[nsec_at..nsec_at + 8].copy_from_slice(&vn.to_ne_bytes());
                nsec_at + 8
            };
            changed = Some(match changed {
                Some((from, _)) => (from, nsec_end),
                None => (sec_at, nsec_end),
            });
        }
        if let Some((from, to)) = changed {
            self.write_mem(buf + from as u64, &bytes[from..to])?;
        }
        Ok(())
    }

    /// Lets the call thread `t` is stopped at run, and returns its result (the thread, or the
    /// whole process, may end instead: then the thread is `Gone`).
    fn run_to_exit(&mut self, t: usize) -> Result<i64, GateError> {
        let tid = self.threads[t].tid;
        ptrace::syscall(tid, None).map_err(|e| format!("PTRACE_SYSCALL: {e}"))?;
        loop {
            match waitpid(tid, WALL).map_err(|e| format!("waitpid: {e}"))? {
                WaitStatus::PtraceSyscall(_) => {
                    let info = ptrace::syscall_info(tid)
                        .map_err(|e| format!("PTRACE_GET_SYSCALL_INFO: {e}"))?;
                    if info.op == libc::PTRACE_SYSCALL_INFO_EXIT {
                        break;
                    }
                    ptrace::syscall(tid, None).map_err(|e| format!("PTRACE_SYSCALL: {e}"))?;
                }
                WaitStatus::Exited(_, code) => {
                    self.thread_ended(t, Stop::Exited(code));
                    return Ok(0);
                }
                WaitStatus::Signaled(_, sig, _) => {
                    self.thread_ended(t, Stop::Killed(sig));
                    return Ok(0);
                }
                WaitStatus::Stopped(_, sig) => {
                    ptrace::syscall(tid, Some(sig)).map_err(|e| format!("PTRACE_SYSCALL: {e}"))?
                }
                _ => ptrace::syscall(tid, None).map_err(|e| format!("PTRACE_SYSCALL: {e}"))?,
            }
        }
        Ok(ptrace::getregs(tid)
            .map_err(|e| format!("PTRACE_GETREGS: {e}"))?
            .rax as i64)
    }

    /// Skips the call the tracee is stopped at (seccomp stop): it returns `ret` without running.
    fn skip_call(&mut self, t: usize, ret: i64) -> Result<(), GateError> {
        let tid = self.threads[t].tid;
        let mut regs = ptrace::getregs(tid).map_err(|e| format!("PTRACE_GETREGS: {e}"))?;
        regs.orig_rax = u64::MAX;
        regs.rax = ret as u64;
        ptrace::setregs(tid, regs).map_err(|e| format!("PTRACE_SETREGS: {e}"))?;
        Ok(())
    }

    /// The program has just been exec'd: open its memory, and hide the vDSO from it, so that
    /// its C library asks the kernel (and so the gate) what time it is.
    fn on_exec(&mut self) -> Result<(), GateError> {
        self.execed = true;
        let mem = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{}/mem", self.pid))
            .map_err(|e| format!("cannot open the gated process's memory: {e}"))?;
        self.mem = Some(mem);
        let sp = ptrace::getregs(self.pid)
            .map_err(|e| format!("PTRACE_GETREGS: {e}"))?
            .rsp;
        // The initial stack: argc, argv..., NULL, envp..., NULL, then the auxiliary vector.
        let word = |t: &Tracee, at: u64| -> Result<u64, GateError> {
            Ok(u64::from_ne_bytes(
                t.read_mem(at, 8)?.try_into().unwrap_or_default(),
            ))
        };
        let argc = word(self, sp)?;
        let mut at = sp + 8 * (argc + 2);
        while word(self, at)? != 0 {
            at += 8;
        }
        at += 8;
        for _ in 0..64 {
            let kind = word(self, at)?;
            if kind == libc::AT_NULL {
                break;
            }
            if kind == libc::AT_SYSINFO_EHDR {
                self.write_mem(at, &libc::AT_IGNORE.to_ne_bytes())?;
            }
            at += 16;
        }
        Ok(())
    }

    /// The absolute path a (dirfd, pointer) pair names, lexically normalized.
    fn resolve(&self, dirfd: i64, raw: &str) -> PathBuf {
        let p = PathBuf::from(raw);
        let full = if p.is_absolute() {
            p
        } else {
            let base = if dirfd == libc::AT_FDCWD as i64 {
                format!("/proc/{}/cwd", self.pid)
            } else {
                format!("/proc/{}/fd/{dirfd}", self.pid)
            };
            std::fs::read_link(&base).unwrap_or_default().join(p)
        };
        let mut out = PathBuf::new();
        for c in full.components() {
            match c {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                c => out.push(c),
            }
        }
        out
    }

    /// `st_nlink` from a `struct stat` (a u64) or `struct statx` (a u32) at `buf`: both at
    /// offset 16 on x86_64; the low 32 bits are the count either way (little-endian).
    fn stat_nlink(&self, buf: u64) -> Option<u32> {
        let b = self.read_mem(buf + 16, 4).ok()?;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }

    fn read_cstr(&self, mut at: u64) -> Result<String, GateError> {
        let mut out = Vec::new();
        while out.len() < 4096 {
            let chunk = self.read_mem(at, 64).or_else(|_| self.read_mem(at, 1))?;
            if let Some(n) = chunk.iter().position(|b| *b == 0) {
                out.extend_from_slice(&chunk[..n]);
                return Ok(String::from_utf8_lossy(&out).into_owned());
            }
            out.extend_from_slice(&chunk);
            at += chunk.len() as u64;
        }
        Err("a path longer than 4096 bytes".into())
    }

    fn read_mem(&self, at: u64, len: usize) -> Result<Vec<u8>, GateError> {
        let mem = self
            .mem
            .as_ref()
            .ok_or("the process's memory is not open yet")?;
        let mut buf = vec![0; len];
        let n = mem
            .read_at(&mut buf, at)
            .map_err(|e| format!("reading the gated process's memory at {at:#x}: {e}"))?;
        buf.truncate(n);
        if n == 0 {
            return Err(
                format!("reading the gated process's memory at {at:#x}: nothing there").into(),
            );
        }
        Ok(buf)
    }

    fn write_mem(&self, at: u64, bytes: &[u8]) -> Result<(), GateError> {
        let mem = self
            .mem
            .as_ref()
            .ok_or("the process's memory is not open yet")?;
        mem.write_all_at(bytes, at)
            .map_err(|e| format!("writing the gated process's memory at {at:#x}: {e}").into())
    }

    /// splitmix64: the gated program's "random" bytes, the same on every run of a schedule.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A root-relative path as the step table shows it: the file name (the directory is the
/// scenario's), or what racelab's own conventions mean (`section list/locker1`, `log done`).
fn short_name(rel: &Path) -> String {
    let parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    match parts.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [".racelab", "critical", s, a] => format!("section {s}/{a}"),
        [".racelab", "logs", l] => format!("log {l}"),
        _ => parts.last().cloned().unwrap_or_default(),
    }
}

/// `link(a, b)`; racelab's markers as what they mean (`enter list`, `leave list`).
fn show_call(op: &str, names: &[String]) -> String {
    match (op, names) {
        ("open", [n]) if n.starts_with("section ") => format!("enter {}", &n["section ".len()..]),
        ("unlink", [n]) if n.starts_with("section ") => format!("leave {}", &n["section ".len()..]),
        _ => format!("{op}({})", names.join(", ")),
    }
}

/// The kernel's coarse wall clock (what it stamps files with), in ns since 1970.
pub fn coarse_now_ns() -> i128 {
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
