//! What the gate costs per call: one program making the same file-system calls (stat and utime
//! on one file, by turns) run plainly and under racelab's gate, where every call is a step that
//! waits for the schedule. Criterion reports calls per second for both; at the end the bench
//! prints the ratio and the time the gate adds to each call, both measured in this run.
//!
//! Both sides start a process (the racelab binary's `__gate-bench`); the gated side also
//! starts the launcher and installs the filter. CALLS is large enough that the per-call cost
//! dominates; `added per call` subtracts the plain run's time, start-up included.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use racelab::gate::run::{execute, Chooser, GateOptions};
use racelab::ir::Program;

const CALLS: u64 = 4_000;
const RACELAB: &str = env!("CARGO_BIN_EXE_racelab");

/// One actor, whose program is the benchmark's worker; the model side is never run.
fn program() -> Program {
    let src = format!(
        "scenario gate-bench {{\n  gate \"$RACELAB __gate-bench $ROOT/bench {CALLS}\"\n  actor worker {{\n    sleep 1s\n  }}\n  expect holds\n}}\n"
    );
    let sc =
        racelab::lang::compile("gate-bench.race", &src).expect("the benchmark's scenario compiles");
    sc.variants[0].clone()
}

/// Always the first enabled actor: the cost measured is the gate's, not a scheduler's.
struct First;

impl Chooser for First {
    fn choose(
        &mut self,
        _step: usize,
        enabled: &[u8],
        _last: Option<(usize, bool)>,
    ) -> Result<Option<u8>, String> {
        Ok(enabled.first().copied())
    }
}

fn plain(dir: &Path) -> Duration {
    let t = Instant::now();
    let status = Command::new(RACELAB)
        .arg("__gate-bench")
        .arg(dir.join("bench"))
        .arg(CALLS.to_string())
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

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let prog = program();
    let mut opts =
        GateOptions::new(Path::new("gate-bench.race"), dir.path()).expect("gate options");
    opts.racelab = RACELAB.into();
    opts.max_steps = CALLS as usize + 10;

    let mut group = c.benchmark_group("gate");
    group.throughput(Throughput::Elements(CALLS));
    group.sample_size(10);
    group.bench_function("ungated", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| plain(dir.path())).sum())
    });
    group.bench_function("gated", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| gated(&prog, &opts)).sum())
    });
    group.finish();

    // The ratio, measured here and now: medians of interleaved runs.
    let mut p: Vec<Duration> = Vec::new();
    let mut g: Vec<Duration> = Vec::new();
    for _ in 0..7 {
        p.push(plain(dir.path()));
        g.push(gated(&prog, &opts));
    }
    p.sort();
    g.sort();
    let (p, g) = (p[3], g[3]);
    let rate = |d: Duration| CALLS as f64 / d.as_secs_f64();
    println!(
        "gate: {CALLS} calls ungated {:.0} calls/s, gated {:.0} calls/s ({:.1}x slower); the gate adds {:.1} us per call",
        rate(p),
        rate(g),
        g.as_secs_f64() / p.as_secs_f64(),
        (g.as_secs_f64() - p.as_secs_f64()) * 1e6 / CALLS as f64
    );
}

/// The mechanism the gate could move to (#23): seccomp user notification. A thread installs a
/// filter that turns its stat and utimensat calls into SECCOMP_RET_USER_NOTIF; the bench's main
/// thread receives each notification and answers SECCOMP_USER_NOTIF_FLAG_CONTINUE, so the call
/// then runs in the kernel as if never stopped. That is the least a supervisor must do per call
/// (the gate would add its turnstile on top); compared with the same calls unfiltered, in this
/// process, it gives the mechanism's cost per call beside today's ptrace stops above.
///
/// No safe crate wraps seccomp's listener ioctls, so this module, and only it, uses `unsafe`
/// (racelab itself has none): plain system calls with zeroed plain-data arguments.
#[allow(unsafe_code)]
mod notify {
    use std::ffi::CString;
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
    const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;

    /// The gate's own filter shape (seccompiler), for these calls, with TRACE turned into
    /// USER_NOTIF.
    fn filter() -> Vec<libc::sock_filter> {
        use seccompiler::{SeccompAction, SeccompFilter, TargetArch};
        let rules = [libc::SYS_newfstatat, libc::SYS_statx, libc::SYS_utimensat]
            .into_iter()
            .map(|nr| (nr, Vec::new()))
            .collect();
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

    /// Installs the filter on the calling thread; returns the listener.
    fn install() -> OwnedFd {
        let mut insns = filter();
        let prog = libc::sock_fprog {
            len: insns.len() as u16,
            filter: insns.as_mut_ptr(),
        };
        // SAFETY: prctl and seccomp with valid arguments; the program outlives the call.
        let fd = unsafe {
            assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
                &prog as *const libc::sock_fprog,
            )
        };
        assert!(fd >= 0, "seccomp: {}", std::io::Error::last_os_error());
        // SAFETY: the kernel just returned this descriptor to us.
        unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
    }

    /// `calls` stat/utimensat calls on `path` by turns.
    fn work(path: &CString, calls: u64) {
        // SAFETY: plain system calls on a NUL-terminated path and a zeroed stat buffer.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            for i in 0..calls {
                let r = if i % 2 == 0 {
                    libc::stat(path.as_ptr(), &mut st)
                } else {
                    libc::utimensat(libc::AT_FDCWD, path.as_ptr(), std::ptr::null(), 0)
                };
                assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
            }
        }
    }

    /// Time for `calls` calls unfiltered, and under user notification answered with CONTINUE.
    pub fn measure(path: &std::path::Path, calls: u64) -> (Duration, Duration) {
        let path = CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL in a path");
        let t = Instant::now();
        work(&path, calls);
        let plain = t.elapsed();
        let (tx, rx) = mpsc::channel();
        let worker = {
            let path = path.clone();
            std::thread::spawn(move || {
                let listener = install();
                tx.send(listener).expect("the supervisor waits");
                let t = Instant::now();
                work(&path, calls);
                t.elapsed()
            })
        };
        let listener = rx.recv().expect("the worker installs its filter");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
        for _ in 0..calls {
            // SAFETY: zeroed plain-data structs, ioctls on our own listener.
            unsafe {
                let mut req: libc::seccomp_notif = std::mem::zeroed();
                assert_eq!(
                    libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req),
                    0,
                    "NOTIF_RECV: {}",
                    std::io::Error::last_os_error()
                );
                let mut resp: libc::seccomp_notif_resp = std::mem::zeroed();
                resp.id = req.id;
                resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32;
                assert_eq!(
                    libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp),
                    0,
                    "NOTIF_SEND: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
        let notified = worker.join().expect("the worker thread");
        (plain, notified)
    }
}

fn seccomp_notify(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("bench");
    std::fs::write(&file, "x").expect("the benchmark's file");
    let mut group = c.benchmark_group("gate-mechanism");
    group.throughput(Throughput::Elements(CALLS));
    group.sample_size(10);
    group.bench_function("seccomp-user-notif", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| notify::measure(&file, CALLS).1).sum())
    });
    group.finish();
    let mut plain = Vec::new();
    let mut notified = Vec::new();
    for _ in 0..7 {
        let (p, n) = notify::measure(&file, CALLS);
        plain.push(p);
        notified.push(n);
    }
    plain.sort();
    notified.sort();
    let (p, n) = (plain[3], notified[3]);
    println!(
        "seccomp user notification: {CALLS} calls plain {:.0} calls/s, notified and continued {:.0} calls/s; the mechanism adds {:.1} us per call (goal for the gate: at most 15 us)",
        CALLS as f64 / p.as_secs_f64(),
        CALLS as f64 / n.as_secs_f64(),
        (n.as_secs_f64() - p.as_secs_f64()) * 1e6 / CALLS as f64
    );
}

criterion_group!(benches, bench, seccomp_notify);
criterion_main!(benches);
