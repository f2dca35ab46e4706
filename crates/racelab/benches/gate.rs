//! What the gate costs per call, and what seccomp user notification would cost instead (#23).
//!
//! One program, the racelab binary's `__gate-bench FILE CALLS` (stat and utimensat on one file
//! under the root, by turns: every call a step of the gate), runs seven ways in one run:
//! - `ungated`: plainly;
//! - `gate-ptrace`: under the gate with every call through ptrace (`GateOptions::ptrace_only`,
//!   the gate before #23 goal 5): a seccomp stop and a syscall-exit stop per step, the
//!   turnstile, the invariants, the file dating;
//! - `gate-notify`: under the gate as it runs by default: the stat and utimensat steps come as
//!   notifications, held until the schedule picks them, made by racelab and answered with their
//!   result (the open and write that create the file still through ptrace);
//! - `ptrace-bare`: the same two ptrace stops per step with nothing else (the launcher and
//!   filter of the gate, a supervisor that reads each call's path and result): the mechanism's
//!   share of the gate's cost;
//! - `notif-continue`: the same calls returned SECCOMP_RET_USER_NOTIF; a supervisor receives
//!   each, reads its path from the program's memory, checks the notification is still valid and
//!   answers SECCOMP_USER_NOTIF_FLAG_CONTINUE (the call then runs in the program, its result
//!   unseen);
//! - `notif-emulate`: as above, but the supervisor makes each stat and utimensat under the root
//!   itself, writes the `struct stat` into the program's memory and answers with the result, so
//!   that it knows every step's result, as the gate must (its step table, its preemption rule
//!   and its virtual file times read them);
//! - `notif-emulate-sync`: the same with SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (kernel 6.6+), which
//!   hands the CPU straight between program and supervisor.
//!
//! Every way starts a process; `added per call` subtracts the plain run's time, start-up
//! included, so it is the cost of the mechanism and nothing else. At the end the bench prints
//! each way's calls/s and µs added per call from medians of interleaved runs.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use racelab_lang::ir::Program;
use racelab_real::gate::run::{execute, Chooser, GateOptions, Last};

const CALLS: u64 = 4_000;
const RACELAB: &str = env!("CARGO_BIN_EXE_racelab");

/// One actor, whose program is the benchmark's worker; the model side is never run.
fn program() -> Program {
    let src = format!(
        "scenario gate-bench {{\n  gate \"$RACELAB __gate-bench $ROOT/bench {CALLS}\"\n  actor worker {{\n    sleep 1s\n  }}\n  expect holds\n}}\n"
    );
    let sc = racelab_core::lang::compile("gate-bench.race", &src)
        .expect("the benchmark's scenario compiles");
    sc.variants[0].clone()
}

/// Always the first enabled actor: the cost measured is the gate's, not a scheduler's.
struct First;

impl Chooser for First {
    fn next_choice(&mut self, runnable: &[usize], _last: Option<Last>) -> Option<usize> {
        runnable.first().copied()
    }
}

/// The benchmark's program with its arguments, as a command line.
fn bench_args(file: &Path) -> [String; 3] {
    [
        "__gate-bench".into(),
        file.display().to_string(),
        CALLS.to_string(),
    ]
}

fn plain(root: &Path) -> Duration {
    let t = Instant::now();
    let status = Command::new(RACELAB)
        .args(bench_args(&root.join("bench")))
        .status()
        .expect("run the benchmark program");
    assert!(status.success(), "the benchmark program failed");
    t.elapsed()
}

fn gated(prog: &Program, opts: &GateOptions) -> Duration {
    let t = Instant::now();
    let exec = execute(prog, opts, &mut First).expect("the gated run");
    // Every call is one gated step: the CALLS, after the open and write that create the file.
    assert_eq!(
        exec.choices.len() as u64,
        CALLS + 2,
        "every call of the program is one gated step"
    );
    assert!(
        exec.broken.is_empty(),
        "the benchmark program ended badly: {:?}",
        exec.broken
    );
    t.elapsed()
}

/// The path a trapped call names under `root`, read from the program's memory (`None`: the
/// call names no path there).
fn path_under(
    mem: &std::fs::File,
    nr: i64,
    args: [u64; 6],
    root: &Path,
) -> Option<std::path::PathBuf> {
    use racelab_real::gate::syscalls::{decode, Call};
    let Some(Call::Path { paths, .. }) = decode(nr, args) else {
        return None;
    };
    paths.into_iter().find_map(|(_, p)| {
        let path = std::path::PathBuf::from(read_cstr(mem, p)?);
        path.starts_with(root).then_some(path)
    })
}

/// A NUL-terminated string at `at` in a process's memory (`/proc/PID/mem`).
fn read_cstr(mem: &std::fs::File, mut at: u64) -> Option<String> {
    use std::os::unix::fs::FileExt;
    if at == 0 {
        return None;
    }
    let mut out = Vec::new();
    while out.len() < 4096 {
        let mut chunk = [0u8; 256];
        let n = mem
            .read_at(&mut chunk, at)
            .or_else(|_| mem.read_at(&mut chunk[..1], at))
            .ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = chunk[..n].iter().position(|b| *b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return Some(String::from_utf8_lossy(&out).into_owned());
        }
        out.extend_from_slice(&chunk[..n]);
        at += n as u64;
    }
    None
}

fn open_mem(pid: u32) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/mem"))
        .expect("the program's memory")
}

/// Today's mechanism with nothing on top: the gate's launcher and filter; at every trapped
/// call after exec, the registers and the path; a call under the root is run to its exit stop
/// and its result read (two stops), any other call continued (one stop).
fn ptrace_bare(root: &Path) -> Duration {
    use nix::sys::ptrace::{self, Event, Options};
    use nix::sys::signal::Signal;
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    use nix::unistd::Pid;

    let wall = Some(WaitPidFlag::__WALL);
    let t = Instant::now();
    let mut child = Command::new(RACELAB)
        .env(racelab_real::gate::notify::PTRACE_ONLY_ENV, "1")
        .arg("__gate-exec")
        .arg(RACELAB)
        .args(bench_args(&root.join("bench")))
        .spawn()
        .expect("start the launcher");
    let pid = Pid::from_raw(child.id() as i32);
    match waitpid(pid, None) {
        Ok(WaitStatus::Stopped(_, Signal::SIGSTOP)) => {}
        other => panic!("the launcher did not stop: {other:?}"),
    }
    ptrace::setoptions(
        pid,
        Options::PTRACE_O_TRACESECCOMP
            | Options::PTRACE_O_TRACEEXEC
            | Options::PTRACE_O_EXITKILL
            | Options::PTRACE_O_TRACESYSGOOD,
    )
    .expect("PTRACE_SETOPTIONS");
    ptrace::cont(pid, None).expect("PTRACE_CONT");
    let mut mem = None;
    let mut steps = 0u64;
    loop {
        match waitpid(pid, wall).expect("waitpid") {
            WaitStatus::Exited(_, code) => {
                assert_eq!(code, 0, "the benchmark program failed");
                break;
            }
            WaitStatus::PtraceEvent(_, _, ev) if ev == Event::PTRACE_EVENT_EXEC as i32 => {
                mem = Some(open_mem(child.id()));
                ptrace::cont(pid, None).expect("PTRACE_CONT");
            }
            WaitStatus::PtraceEvent(_, _, ev) if ev == Event::PTRACE_EVENT_SECCOMP as i32 => {
                let under = mem.as_ref().and_then(|mem| {
                    let r = ptrace::getregs(pid).expect("PTRACE_GETREGS");
                    let args = [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9];
                    path_under(mem, r.orig_rax as i64, args, root)
                });
                if under.is_some() {
                    steps += 1;
                    ptrace::syscall(pid, None).expect("PTRACE_SYSCALL");
                    match waitpid(pid, wall).expect("waitpid") {
                        WaitStatus::PtraceSyscall(_) => {
                            let result = ptrace::getregs(pid).expect("PTRACE_GETREGS").rax as i64;
                            assert!(result >= 0, "a benchmark call failed: {result}");
                        }
                        other => panic!("expected the call's exit stop: {other:?}"),
                    }
                }
                ptrace::cont(pid, None).expect("PTRACE_CONT");
            }
            // The launcher's second stop, filters installed.
            WaitStatus::Stopped(_, Signal::SIGSTOP) if mem.is_none() => {
                ptrace::cont(pid, None).expect("PTRACE_CONT")
            }
            WaitStatus::Stopped(_, sig) => ptrace::cont(pid, Some(sig)).expect("PTRACE_CONT"),
            _ => ptrace::cont(pid, None).expect("PTRACE_CONT"),
        }
    }
    let _ = child.wait();
    // The open that creates the file, then the CALLS.
    assert_eq!(steps, CALLS + 1, "every call under the root was seen");
    t.elapsed()
}

/// What the notification supervisor does with a call under the root.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// SECCOMP_USER_NOTIF_FLAG_CONTINUE: the call runs in the program; its result is unseen.
    Continue,
    /// The supervisor makes the call itself and answers with its result.
    Emulate,
    /// As `Emulate`, with SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP set on the listener.
    EmulateSync,
}

/// Seccomp user notification: the listener ioctls, the filter's installation in the program
/// (a `pre_exec` hook) and the emulated calls. No safe crate wraps these, so this module, and
/// only it, uses `unsafe` (racelab itself has none): plain system calls with zeroed plain-data
/// arguments.
#[allow(unsafe_code)]
mod notify {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::os::unix::fs::FileExt;
    use std::os::unix::process::CommandExt;
    use std::path::Path;
    use std::process::{Child, Command};

    use super::Answer;

    const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
    const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
    /// linux/seccomp.h, kernel 6.6+.
    const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

    /// The gate's own filter (seccompiler, every call in `TRAPPED`), with TRACE turned into
    /// USER_NOTIF.
    fn filter() -> Vec<libc::sock_filter> {
        use racelab_real::gate::syscalls::TRAPPED;
        use seccompiler::{SeccompAction, SeccompFilter, TargetArch};
        let rules = TRAPPED.iter().map(|&nr| (nr, Vec::new())).collect();
        let prog: seccompiler::BpfProgram = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Trace(0),
            TargetArch::x86_64,
        )
        .and_then(TryInto::try_into)
        .expect("the filter compiles");
        prog.into_iter()
            .map(|i| libc::sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: if i.k == SECCOMP_RET_TRACE {
                    SECCOMP_RET_USER_NOTIF
                } else {
                    i.k
                },
            })
            .collect()
    }

    /// Starts `command` with the filter installed just before its exec, and returns it with
    /// the listener. The listener is created close-on-exec; the child clears that (an ioctl the
    /// filter does not trap) so that the descriptor outlives the exec and racelab can take a
    /// copy with pidfd_getfd, found by its name in /proc/PID/fd.
    pub fn spawn(mut command: Command, answer: Answer) -> (Child, OwnedFd) {
        let insns = filter();
        // SAFETY: the hook runs between fork and exec and only makes system calls on data
        // built before the fork (no allocation, no locks).
        unsafe {
            command.pre_exec(move || {
                let prog = libc::sock_fprog {
                    len: insns.len() as u16,
                    filter: insns.as_ptr() as *mut libc::sock_filter,
                };
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let fd = libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
                    &prog as *const libc::sock_fprog,
                );
                if fd < 0 || libc::ioctl(fd as i32, libc::FIONCLEX) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("start the notified program");
        let pid = child.id();
        let remote = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("the program's descriptors")
            .flatten()
            .find(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|l| l.to_string_lossy().contains("seccomp notify"))
            })
            .and_then(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .expect("the program holds its listener");
        // SAFETY: pidfd_open and pidfd_getfd on our own child; the kernel returns new
        // descriptors we own.
        let listener = unsafe {
            let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0);
            assert!(
                pidfd >= 0,
                "pidfd_open: {}",
                std::io::Error::last_os_error()
            );
            let pidfd = OwnedFd::from_raw_fd(pidfd as RawFd);
            let fd = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), remote, 0);
            assert!(fd >= 0, "pidfd_getfd: {}", std::io::Error::last_os_error());
            OwnedFd::from_raw_fd(fd as RawFd)
        };
        if answer == Answer::EmulateSync {
            // SAFETY: an ioctl on our listener, its argument by value.
            let r = unsafe {
                libc::ioctl(
                    listener.as_raw_fd(),
                    libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                    SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
                )
            };
            assert_eq!(r, 0, "SET_FLAGS: {}", std::io::Error::last_os_error());
        }
        (child, listener)
    }

    /// One notification: the call's number, its arguments, the thread, and its id.
    pub struct Request {
        pub id: u64,
        pub pid: u32,
        pub nr: i64,
        pub args: [u64; 6],
    }

    /// The next notification, or `None` once no process uses the filter any more.
    pub fn receive(listener: &OwnedFd) -> Option<Request> {
        let fd = listener.as_raw_fd();
        loop {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll on one pollfd we own.
            let n = unsafe { libc::poll(&mut pfd, 1, -1) };
            if n < 0 {
                continue;
            }
            if pfd.revents & libc::POLLIN == 0 {
                return None;
            }
            // SAFETY: RECV into a zeroed plain-data struct, as the kernel demands.
            let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
            let r = unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
            if r == 0 {
                return Some(Request {
                    id: req.id,
                    pid: req.pid,
                    nr: req.data.nr as i64,
                    args: req.data.args,
                });
            }
            // ENOENT: the caller died before we took its call.
        }
    }

    /// Whether notification `id` is still pending: a check after reading the program's memory,
    /// so that what was read came from the thread that made the call.
    pub fn still_valid(listener: &OwnedFd, id: u64) -> bool {
        let mut id = id;
        // SAFETY: ID_VALID reads a u64 we own.
        unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
                &mut id,
            ) == 0
        }
    }

    /// Answers `id`: run the call (`None`), or return `Some(Ok(value))` / `Some(Err(errno))`.
    pub fn respond(listener: &OwnedFd, id: u64, result: Option<Result<i64, i32>>) {
        // SAFETY: SEND with a zeroed plain-data struct we fill in.
        let mut resp: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
        resp.id = id;
        match result {
            None => resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
            Some(Ok(v)) => resp.val = v,
            Some(Err(e)) => resp.error = -e,
        }
        // ENOENT: the caller died meanwhile; nothing to answer.
        // SAFETY: as above.
        unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND,
                &mut resp,
            )
        };
    }

    /// Makes a stat (newfstatat) or utimensat of the program's on `path` here, writing what it
    /// returns into the program's memory. `None`: not a call this emulates.
    pub fn emulate(
        mem: &std::fs::File,
        nr: i64,
        args: [u64; 6],
        path: &Path,
    ) -> Option<Result<i64, i32>> {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
        let errno = || {
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO)
        };
        match nr {
            libc::SYS_newfstatat => {
                // SAFETY: fstatat into a zeroed struct stat we own; its bytes are then copied.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                if unsafe { libc::fstatat(libc::AT_FDCWD, c.as_ptr(), &mut st, args[3] as i32) }
                    != 0
                {
                    return Some(Err(errno()));
                }
                let bytes = unsafe {
                    std::slice::from_raw_parts(
                        (&st as *const libc::stat).cast::<u8>(),
                        std::mem::size_of::<libc::stat>(),
                    )
                };
                Some(match mem.write_all_at(bytes, args[2]) {
                    Ok(()) => Ok(0),
                    Err(_) => Err(libc::EFAULT),
                })
            }
            libc::SYS_utimensat => {
                let mut times = [0u8; 32];
                let ptr = if args[2] == 0 {
                    std::ptr::null()
                } else {
                    if mem.read_exact_at(&mut times, args[2]).is_err() {
                        return Some(Err(libc::EFAULT));
                    }
                    times.as_ptr().cast::<libc::timespec>()
                };
                // SAFETY: utimensat on a C string and two timespecs we own (or null).
                let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ptr, args[3] as i32) };
                Some(if r == 0 { Ok(0) } else { Err(errno()) })
            }
            _ => None,
        }
    }
}

/// The program under seccomp user notification, answered as `answer` says; every call under
/// the root is a step whose path is read (and, emulating, whose result is known).
fn notified(root: &Path, answer: Answer) -> Duration {
    let t = Instant::now();
    let mut command = Command::new(RACELAB);
    command.args(bench_args(&root.join("bench")));
    let (mut child, listener) = notify::spawn(command, answer);
    let mem = open_mem(child.id());
    let (mut steps, mut emulated) = (0u64, 0u64);
    while let Some(req) = notify::receive(&listener) {
        let under = path_under(&mem, req.nr, req.args, root);
        if !notify::still_valid(&listener, req.id) {
            continue;
        }
        debug_assert_eq!(req.pid, child.id(), "one thread");
        let result = match &under {
            Some(path) => {
                steps += 1;
                if answer == Answer::Continue {
                    None
                } else {
                    notify::emulate(&mem, req.nr, req.args, path)
                }
            }
            None => None,
        };
        if let Some(r) = result {
            emulated += 1;
            assert!(r.is_ok(), "an emulated call failed: {r:?}");
        }
        notify::respond(&listener, req.id, result);
    }
    let status = child.wait().expect("the notified program");
    assert!(status.success(), "the benchmark program failed");
    assert_eq!(steps, CALLS + 1, "every call under the root was seen");
    if answer != Answer::Continue {
        assert_eq!(emulated, CALLS, "every stat and utimensat was emulated");
    }
    t.elapsed()
}

/// One way of running the program, by name: times one run.
type Way<'a> = (&'static str, Box<dyn Fn() -> Duration + 'a>);

/// The ways, in the order the bench prints them.
fn ways<'a>(
    root: &'a Path,
    prog: &'a Program,
    ptrace: &'a GateOptions,
    notify: &'a GateOptions,
) -> Vec<Way<'a>> {
    vec![
        ("ungated", Box::new(move || plain(root))),
        ("gate-ptrace", Box::new(move || gated(prog, ptrace))),
        ("gate-notify", Box::new(move || gated(prog, notify))),
        ("ptrace-bare", Box::new(move || ptrace_bare(root))),
        (
            "notif-continue",
            Box::new(move || notified(root, Answer::Continue)),
        ),
        (
            "notif-emulate",
            Box::new(move || notified(root, Answer::Emulate)),
        ),
        (
            "notif-emulate-sync",
            Box::new(move || notified(root, Answer::EmulateSync)),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let prog = program();
    let mut opts =
        GateOptions::new(Path::new("gate-bench.race"), dir.path()).expect("gate options");
    opts.racelab = RACELAB.into();
    opts.max_steps = CALLS as usize + 10;
    let mut ptrace = opts.clone();
    ptrace.ptrace_only = true;
    opts.ptrace_only = false;
    let ways = ways(dir.path(), &prog, &ptrace, &opts);

    let mut group = c.benchmark_group("gate");
    group.throughput(Throughput::Elements(CALLS));
    group.sample_size(10);
    for (name, run) in &ways {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run()).sum())
        });
    }
    group.finish();

    // The comparison, measured here and now: medians of interleaved runs.
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); ways.len()];
    for _ in 0..7 {
        for (i, (_, run)) in ways.iter().enumerate() {
            times[i].push(run());
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let medians: Vec<Duration> = times.iter_mut().map(median).collect();
    let plain = medians[0];
    println!(
        "gate mechanisms: {CALLS} stat/utimensat calls under the root, medians of 7 interleaved runs (kernel {}, load {}):",
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
    for ((name, _), d) in ways.iter().zip(&medians) {
        println!(
            "  {name:<20} {:>9.0} calls/s  {:>6.1} us added per call",
            CALLS as f64 / d.as_secs_f64(),
            (d.as_secs_f64() - plain.as_secs_f64()) * 1e6 / CALLS as f64
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
