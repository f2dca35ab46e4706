//! One gated process: started under ptrace, run from one gated call to the next.
//!
//! A tracee is always stopped except while [`Tracee::resume`] runs it: at its start, at a
//! *step* (a file-system call under the run's root, not yet performed), or asleep. `resume`
//! lets the pending call happen, reads its result, and runs the program until the next step,
//! answering every free call on the way: time from the virtual clock, random bytes from a
//! seeded generator, and files outside the root left alone.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::sys::ptrace::{self, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::syscalls::{decode, virtual_clock, wall_clock, Call, TimeKind};
use super::VirtualClock;

/// Where a tracee stands when `resume` hands it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// At a step: the call, shown as `link(/a, /b)`, not yet made.
    Step(String),
    /// Asleep until this virtual time (ns).
    Sleep(u64),
    /// Exited by itself with this status.
    Exited(i32),
    /// Killed by a signal (a crash fault, or the hang watchdog).
    Killed(Signal),
}

/// What went wrong with the gate itself (not with the program).
pub type GateError = String;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Stopped before exec (the launcher's SIGSTOP), or nowhere in particular.
    Start,
    /// At a step's seccomp stop.
    Step,
    /// At a sleep's seccomp stop.
    Sleep,
    /// Started with [`Tracee::start`] and not waited for yet.
    Running,
    Gone,
}

pub struct Tracee {
    pub pid: Pid,
    child: Child,
    root: PathBuf,
    mem: Option<File>,
    at: At,
    /// The pending step's paths and descriptor, to track descriptors it opens or closes.
    pending: Option<Pending>,
    /// Descriptors open on files under the root, and their paths (shown root-relative).
    fds: HashMap<i64, String>,
    /// The tracked descriptors this process holds a flock through: on these, `fstat` (a lock
    /// library checking the inode it locked is still linked) and `close` (which drops the lock)
    /// are steps too.
    flocked: std::collections::HashSet<i64>,
    rng: u64,
    execed: bool,
    /// The result of the last step resumed, for the step table (`ok`, `3`, `EEXIST`).
    pub last_result: String,
    pub stderr: PathBuf,
    /// How the process ended, when a wait inside a step saw it.
    exit_status: Option<Stop>,
}

#[derive(Debug, Clone)]
struct Pending {
    op: &'static str,
    /// The descriptor a call on one acts on (`flock` updates [`Tracee::flocked`] by it).
    fd: Option<i64>,
    /// Where an `fstat` writes its result, to show the link count it read.
    stat_buf: Option<u64>,
    /// The first path (for `open`, what the new descriptor names).
    path: Option<String>,
}

impl Tracee {
    /// Starts `argv` under the gate: the racelab binary re-executed as `__gate-exec`, stopped
    /// before the program itself runs. Output goes to files in `logs` (a full pipe would
    /// block a process racelab keeps stopped).
    pub fn spawn(
        racelab: &Path,
        argv: &[String],
        env: &[(String, String)],
        cwd: &Path,
        root: &Path,
        logs: &Path,
        seed: u64,
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
            at: At::Start,
            pending: None,
            fds: HashMap::new(),
            flocked: Default::default(),
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03,
            execed: false,
            last_result: String::new(),
            stderr: stderr_path,
            exit_status: None,
        };
        // The launcher stops itself before installing the filter; set our options then.
        match waitpid(pid, None) {
            Ok(WaitStatus::Stopped(_, Signal::SIGSTOP)) => {}
            Ok(WaitStatus::Exited(_, code)) => {
                t.at = At::Gone;
                return Err(format!(
                    "the gate launcher exited with status {code}: {}",
                    t.stderr_tail()
                ));
            }
            other => {
                return Err(format!(
                    "the gate launcher did not stop as expected: {other:?}"
                ))
            }
        }
        let opts = Options::PTRACE_O_TRACESECCOMP
            | Options::PTRACE_O_TRACEEXEC
            | Options::PTRACE_O_EXITKILL
            | Options::PTRACE_O_TRACESYSGOOD;
        ptrace::setoptions(pid, opts).map_err(|e| format!("PTRACE_SETOPTIONS: {e}"))?;
        Ok(t)
    }

    pub fn alive(&self) -> bool {
        self.at != At::Gone
    }

    /// The last lines the process wrote to stderr, for reports.
    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(6)..].join("\n")
    }

    /// SIGKILL, now; the next `resume` (or `reap`) collects it.
    pub fn kill(&mut self) {
        if self.at != At::Gone {
            let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
        }
    }

    /// Kills the process if it still lives and waits for it, so that nothing is left behind.
    pub fn reap(&mut self) -> Option<Stop> {
        if self.at == At::Gone {
            return None;
        }
        self.kill();
        self.at = At::Gone;
        let _ = self.child.wait();
        Some(Stop::Killed(Signal::SIGKILL))
    }

    /// Lets a freshly started process run on (to its exec and beyond) without waiting for it:
    /// the programs' start-ups, which touch nothing under the root, then overlap.
    pub fn start(&mut self) -> Result<(), GateError> {
        if self.at == At::Start {
            self.cont(None)?;
            self.at = At::Running;
        }
        Ok(())
    }

    /// Lets the pending call happen (a step, or the end of a sleep) and runs the program to its
    /// next step, sleep or end.
    pub fn resume(&mut self, clock: &VirtualClock) -> Result<Stop, GateError> {
        self.last_result.clear();
        match self.at {
            At::Gone => return Err("resumed a process that has ended".into()),
            At::Running => {}
            At::Start => self.cont(None)?,
            At::Sleep => {
                self.skip_call(0)?;
                self.cont(None)?;
            }
            At::Step => {
                self.finish_step()?;
                if self.at == At::Gone {
                    return self.ended();
                }
                self.cont(None)?;
            }
        }
        self.run(clock)
    }

    fn ended(&mut self) -> Result<Stop, GateError> {
        if let Some(st) = self.exit_status.take() {
            let _ = self.child.wait();
            return Ok(st);
        }
        match self.child.wait() {
            Ok(st) => {
                use std::os::unix::process::ExitStatusExt;
                match (st.code(), st.signal()) {
                    (Some(c), _) => Ok(Stop::Exited(c)),
                    (_, Some(s)) => {
                        Ok(Stop::Killed(Signal::try_from(s).unwrap_or(Signal::SIGKILL)))
                    }
                    _ => Ok(Stop::Exited(-1)),
                }
            }
            Err(e) => Err(format!("waiting for the gated process: {e}")),
        }
    }

    /// Runs until a step, a sleep or the end.
    fn run(&mut self, clock: &VirtualClock) -> Result<Stop, GateError> {
        loop {
            let status = waitpid(self.pid, None).map_err(|e| format!("waitpid: {e}"))?;
            match status {
                WaitStatus::Exited(_, code) => {
                    self.at = At::Gone;
                    let _ = self.child.wait();
                    return Ok(Stop::Exited(code));
                }
                WaitStatus::Signaled(_, sig, _) => {
                    self.at = At::Gone;
                    let _ = self.child.wait();
                    return Ok(Stop::Killed(sig));
                }
                WaitStatus::PtraceEvent(_, _, ev)
                    if ev == ptrace::Event::PTRACE_EVENT_EXEC as i32 =>
                {
                    self.on_exec()?;
                    self.cont(None)?;
                }
                WaitStatus::PtraceEvent(_, _, ev)
                    if ev == ptrace::Event::PTRACE_EVENT_SECCOMP as i32 =>
                {
                    if !self.execed {
                        // The launcher's own calls between its filter and exec.
                        self.cont(None)?;
                        continue;
                    }
                    if let Some(stop) = self.on_call(clock)? {
                        return Ok(stop);
                    }
                }
                WaitStatus::PtraceEvent(..) | WaitStatus::PtraceSyscall(_) => self.cont(None)?,
                WaitStatus::Stopped(_, sig) => self.cont(Some(sig))?,
                _ => self.cont(None)?,
            }
        }
    }

    fn cont(&mut self, sig: Option<Signal>) -> Result<(), GateError> {
        ptrace::cont(self.pid, sig).map_err(|e| format!("PTRACE_CONT: {e}"))
    }

    /// A trapped call: answer it here (and return `None`), or stop at it.
    fn on_call(&mut self, clock: &VirtualClock) -> Result<Option<Stop>, GateError> {
        let regs = ptrace::getregs(self.pid).map_err(|e| format!("PTRACE_GETREGS: {e}"))?;
        let args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9];
        let Some(call) = decode(regs.orig_rax as i64, args) else {
            self.cont(None)?;
            return Ok(None);
        };
        match call {
            Call::Path { op, paths } => {
                let mut shown = Vec::new();
                let mut gated = false;
                let mut model_path = None;
                for (dirfd, p) in paths {
                    // An empty path with AT_EMPTY_PATH names the descriptor itself (fstat,
                    // futimens): a call on the descriptor (glibc's fstat is newfstatat(fd, "")).
                    let raw = if p == 0 { String::new() } else { self.read_cstr(p)? };
                    if raw.is_empty() {
                        if op == "stat" && self.flocked.contains(&dirfd) {
                            return self.fd_step("fstat", dirfd);
                        }
                        continue;
                    }
                    let path = self.resolve(dirfd, &raw);
                    match path.strip_prefix(&self.root) {
                        Ok(rel) => {
                            gated = true;
                            model_path.get_or_insert_with(|| format!("/{}", rel.display()));
                            shown.push(short_name(rel));
                        }
                        Err(_) => shown.push(path.display().to_string()),
                    }
                }
                if !gated {
                    self.cont(None)?;
                    return Ok(None);
                }
                self.pending = Some(Pending {
                    op,
                    fd: None,
                    stat_buf: None,
                    path: model_path,
                });
                self.at = At::Step;
                Ok(Some(Stop::Step(show_call(op, &shown))))
            }
            Call::Fd { op, fd } => {
                if !self.fds.contains_key(&fd) {
                    self.cont(None)?;
                    return Ok(None);
                }
                let locked = self.flocked.contains(&fd);
                if matches!(op, "close" | "fstat" | "futime") && !locked {
                    // Not steps: they change nothing another process can see on a local
                    // filesystem (NFS flushes on close; its writes were steps already).
                    if op == "close" {
                        self.fds.remove(&fd);
                    }
                    self.cont(None)?;
                    return Ok(None);
                }
                if op == "futime" {
                    self.cont(None)?;
                    return Ok(None);
                }
                self.fd_step(op, fd)
            }
            Call::Time { clock: id, buf, kind } if virtual_clock(id) => {
                let ns = if wall_clock(id) { clock.wall_ns() } else { clock.monotonic_ns() };
                let (sec, sub) = ((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64);
                let ret = match kind {
                    TimeKind::Timespec => {
                        self.write_mem(buf, &[sec.to_ne_bytes(), sub.to_ne_bytes()].concat())?;
                        0
                    }
                    TimeKind::Timeval => {
                        if buf != 0 {
                            self.write_mem(buf, &[sec.to_ne_bytes(), (sub / 1000).to_ne_bytes()].concat())?;
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
                self.skip_call(ret)?;
                self.cont(None)?;
                Ok(None)
            }
            Call::Time { .. } => {
                self.cont(None)?;
                Ok(None)
            }
            Call::Sleep { clock: id, req, abs } if virtual_clock(id) => {
                let b = self.read_mem(req, 16)?;
                let sec = i64::from_ne_bytes(b[..8].try_into().unwrap_or_default());
                let nsec = i64::from_ne_bytes(b[8..].try_into().unwrap_or_default());
                let d = (sec.max(0) as u64).saturating_mul(1_000_000_000).saturating_add(nsec.max(0) as u64);
                let until = if !abs {
                    clock.now_ns().saturating_add(d)
                } else if wall_clock(id) {
                    d.saturating_sub(clock.wall_ns() - clock.now_ns())
                } else {
                    d.saturating_sub(clock.monotonic_ns() - clock.now_ns())
                };
                self.at = At::Sleep;
                Ok(Some(Stop::Sleep(until.max(clock.now_ns()))))
            }
            Call::Sleep { .. } => {
                self.cont(None)?;
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
                self.skip_call(len as i64)?;
                self.cont(None)?;
                Ok(None)
            }
            Call::Dup { fd } => {
                // dup2(3, 1): the copy writes to the same file, so it is tracked too.
                if let Some(path) = self.fds.get(&fd).cloned() {
                    let newfd = self.run_to_exit()?;
                    if self.at == At::Gone {
                        return Ok(Some(self.ended()?));
                    }
                    if newfd >= 0 {
                        self.fds.insert(newfd, path);
                    }
                } else if let Ok(regs) = ptrace::getregs(self.pid) {
                    // dup2(other, tracked): the tracked descriptor now names another file.
                    if matches!(regs.orig_rax as i64, libc::SYS_dup2 | libc::SYS_dup3) {
                        self.fds.remove(&(regs.rsi as i32 as i64));
                    }
                }
                self.cont(None)?;
                Ok(None)
            }
            Call::Other => {
                self.cont(None)?;
                Ok(None)
            }
            Call::Spawn => Err("the gated program started a thread or a process; the gate follows single-threaded programs only".into()),
        }
    }

    /// Stops at a call on tracked descriptor `fd` as a step.
    fn fd_step(&mut self, op: &'static str, fd: i64) -> Result<Option<Stop>, GateError> {
        let path = self.fds.get(&fd).cloned().unwrap_or_default();
        let shown = short_name(Path::new(path.trim_start_matches('/')));
        let stat_buf = if op == "fstat" {
            let regs = ptrace::getregs(self.pid).map_err(|e| format!("PTRACE_GETREGS: {e}"))?;
            match regs.orig_rax as i64 {
                libc::SYS_fstat => Some(regs.rsi),
                libc::SYS_newfstatat => Some(regs.rdx),
                libc::SYS_statx => Some(regs.r8),
                _ => None,
            }
        } else {
            None
        };
        self.pending = Some(Pending {
            op,
            fd: Some(fd),
            stat_buf,
            path: Some(path),
        });
        self.at = At::Step;
        Ok(Some(Stop::Step(show_call(op, &[shown]))))
    }

    /// Performs the pending step: the call runs, we read its result at the syscall exit.
    fn finish_step(&mut self) -> Result<(), GateError> {
        let ret = self.run_to_exit()?;
        if self.at == At::Gone {
            return Ok(());
        }
        let pending = self.pending.take();
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
                    Some(buf) => self
                        .stat_nlink(buf)
                        .map_or("ok".into(), |n| format!("nlink {n}")),
                    None => "ok".into(),
                },
                _ => "ok".into(),
            }
        };
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
        self.at = At::Start;
        Ok(())
    }

    /// Lets the call the tracee is stopped at run, and returns its result (the process may end
    /// instead: then `at` is `Gone`).
    fn run_to_exit(&mut self) -> Result<i64, GateError> {
        ptrace::syscall(self.pid, None).map_err(|e| format!("PTRACE_SYSCALL: {e}"))?;
        loop {
            match waitpid(self.pid, None).map_err(|e| format!("waitpid: {e}"))? {
                WaitStatus::PtraceSyscall(_) => {
                    let info = ptrace::syscall_info(self.pid)
                        .map_err(|e| format!("PTRACE_GET_SYSCALL_INFO: {e}"))?;
                    if info.op == libc::PTRACE_SYSCALL_INFO_EXIT {
                        break;
                    }
                    ptrace::syscall(self.pid, None).map_err(|e| format!("PTRACE_SYSCALL: {e}"))?;
                }
                WaitStatus::Exited(_, code) => {
                    self.at = At::Gone;
                    self.exit_status = Some(Stop::Exited(code));
                    return Ok(0);
                }
                WaitStatus::Signaled(_, sig, _) => {
                    self.at = At::Gone;
                    self.exit_status = Some(Stop::Killed(sig));
                    return Ok(0);
                }
                WaitStatus::Stopped(_, sig) => ptrace::syscall(self.pid, Some(sig))
                    .map_err(|e| format!("PTRACE_SYSCALL: {e}"))?,
                _ => ptrace::syscall(self.pid, None).map_err(|e| format!("PTRACE_SYSCALL: {e}"))?,
            }
        }
        Ok(ptrace::getregs(self.pid)
            .map_err(|e| format!("PTRACE_GETREGS: {e}"))?
            .rax as i64)
    }

    /// Skips the call the tracee is stopped at (seccomp stop): it returns `ret` without running.
    fn skip_call(&mut self, ret: i64) -> Result<(), GateError> {
        let mut regs = ptrace::getregs(self.pid).map_err(|e| format!("PTRACE_GETREGS: {e}"))?;
        regs.orig_rax = u64::MAX;
        regs.rax = ret as u64;
        ptrace::setregs(self.pid, regs).map_err(|e| format!("PTRACE_SETREGS: {e}"))?;
        self.at = At::Start;
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
            return Err(format!(
                "reading the gated process's memory at {at:#x}: nothing there"
            ));
        }
        Ok(buf)
    }

    fn write_mem(&self, at: u64, bytes: &[u8]) -> Result<(), GateError> {
        let mem = self
            .mem
            .as_ref()
            .ok_or("the process's memory is not open yet")?;
        mem.write_all_at(bytes, at)
            .map_err(|e| format!("writing the gated process's memory at {at:#x}: {e}"))
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

impl Drop for Tracee {
    fn drop(&mut self) {
        self.reap();
    }
}
