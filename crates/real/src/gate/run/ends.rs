//! How the gated processes end: exits, kills, crashes and hangs, and settling the processes
//! after each step until each is parked at a gated call or gone.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::super::tracee::{GateError, Stop, ThreadAt, Tracee};
use super::super::VirtualClock;
use super::watchdog::Watchdog;
use super::{Execution, GateOptions};
use racelab_lang::ir::{oracle, Program};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ended {
    Exited(i32),
    Killed(Signal),
    /// By a crash fault.
    Crashed,
    /// By the watchdog.
    Hung,
}

/// How actor `p` ended, if it has: racelab's doing (`fate`) or the process's own.
pub(super) fn ended(p: &Tracee, fate: &Option<Ended>) -> Option<Ended> {
    if let Some(f) = fate {
        return Some(f.clone());
    }
    match p.end.as_ref()? {
        Stop::Exited(code) => Some(Ended::Exited(*code)),
        Stop::Killed(sig) => Some(Ended::Killed(*sig)),
    }
}

/// Records, at the current step, every actor that has just ended badly: a non-zero exit or a
/// signal is an unhandled error, a hang a deadlock.
pub(super) fn note_ends(
    prog: &Program,
    procs: &[Tracee],
    fate: &[Option<Ended>],
    reported: &mut [bool],
    exec: &mut Execution,
    opts: &GateOptions,
) {
    for i in 0..procs.len() {
        if reported[i] {
            continue;
        }
        let Some(end) = ended(&procs[i], &fate[i]) else {
            continue;
        };
        reported[i] = true;
        let who = &prog.actors[i].name;
        match end {
            Ended::Exited(code) if code != 0 => exec.record(oracle::UNHANDLED_ERROR, format!("unhandled_error: {who} exited with status {code}: {}", procs[i].stderr_tail())),
            Ended::Killed(sig) => exec.record(oracle::UNHANDLED_ERROR, format!("unhandled_error: {who} was killed by {sig}: {}", procs[i].stderr_tail())),
            Ended::Hung => exec.record(
                oracle::DEADLOCK,
                format!("deadlock: {who} made no gated call for {:?} of wall time (blocked outside the gate, or spinning): killed and reaped", opts.step_timeout),
            ),
            _ => {}
        }
    }
}

/// Lets every free thread of every process run until the program is *settled*: each thread is
/// held by the gate (at a step, asleep, in a timed wait) or idle in the kernel (a futex, an
/// epoll with no deadline), and something can go on (a thread at a step, a wake-up due, or
/// every process ended). Nothing then changes until racelab lets a thread go, so the schedule's
/// choice is among everything that can run. A program that does not settle within
/// `--step-timeout` (spinning, or every thread idle with nothing to wake it) is killed and
/// marked hung.
pub(super) fn settle(
    procs: &mut [Tracee],
    clock: &VirtualClock,
    watchdog: &Watchdog,
    opts: &GateOptions,
    fate: &mut [Option<Ended>],
) -> Result<(), GateError> {
    // A single-threaded program (the common case) is waited for, not polled: one free thread
    // in all, alone in its process.
    loop {
        let free: Vec<usize> = (0..procs.len())
            .filter(|&i| {
                procs[i].alive() && procs[i].threads.iter().any(|t| t.at == ThreadAt::Free)
            })
            .collect();
        let [i] = free[..] else { break };
        if procs[i].live_threads() != 1 {
            break;
        }
        watchdog.arm(procs[i].pid.as_raw(), opts.step_timeout);
        let waited = procs[i].wait_single(clock);
        if watchdog.disarm() {
            fate[i] = Some(Ended::Hung);
        }
        waited?;
        if procs[i].live_threads() <= 1 {
            return Ok(());
        }
    }
    let deadline = Instant::now() + opts.step_timeout;
    let mut probed = false;
    let mut quiet = 0u32;
    let mut last_signature = None;
    loop {
        let mut any = false;
        for p in procs.iter_mut() {
            any |= p.drain(clock)?;
        }
        if any {
            quiet = 0;
            last_signature = None;
            continue;
        }
        // Settled twice over, with no thread run in between (see `idle_signature`).
        let signature: Option<Vec<Vec<(i32, u64)>>> =
            procs.iter().map(Tracee::idle_signature).collect();
        let confirmed = signature.is_some() && signature == last_signature;
        last_signature = signature;
        if confirmed {
            if !probed {
                probed = true;
                let mut probing = false;
                for p in procs.iter_mut().filter(|p| p.alive()) {
                    probing |= p.probe_timed()?;
                }
                if probing {
                    last_signature = None;
                    continue;
                }
            }
            let goes_on = procs.iter().all(|p| !p.alive())
                || procs
                    .iter()
                    .any(|p| p.alive() && (!p.ready().is_empty() || p.next_wakeup().is_some()));
            if goes_on {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            // Spinning threads, or everything idle with nothing to wake it: hung.
            let all_settled = procs.iter().all(Tracee::settled);
            for (i, p) in procs.iter_mut().enumerate() {
                if p.alive() && (all_settled || !p.settled()) {
                    p.reap();
                    fate[i] = Some(Ended::Hung);
                }
            }
            return Ok(());
        }
        // Poll: a few yields first (a thread pool's hand-over is quick), then short sleeps.
        quiet += 1;
        if quiet < 20 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(if quiet < 200 { 50 } else { 500 }));
        }
    }
}

/// Whether a step changed what other processes can see: a successful link, unlink, rename,
/// utime, write, flock (taking or dropping the lock; a close that is a step drops one), or
/// entering or leaving a section. Schedulers prefer to switch after these.
pub(super) fn changes_files(operation: &str, result: &str) -> bool {
    let op = operation.split('(').next().unwrap_or("");
    let failed = result.starts_with('E');
    matches!(
        op,
        "link"
            | "unlink"
            | "rename"
            | "utime"
            | "write"
            | "mkdir"
            | "rmdir"
            | "flock"
            | "flock-un"
            | "close"
    ) && !failed
        || operation.starts_with("enter ")
        || operation.starts_with("leave ")
}

pub(super) fn describe_end(e: &Ended) -> String {
    match e {
        Ended::Exited(c) => format!("exits ({c})"),
        Ended::Killed(sig) => format!("killed by {sig}"),
        Ended::Hung => "hung: killed".into(),
        Ended::Crashed => "crashed".into(),
    }
}
