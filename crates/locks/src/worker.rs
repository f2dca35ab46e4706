//! Contention runs: owners (threads, or `racelab __lockbench` processes) acquiring and releasing
//! one lock many times, timing each acquire, and optionally doing a read-modify-write of a
//! counter file while they hold it (a lost increment is a mutual-exclusion failure).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::time::{clock_gettime, ClockId};
use serde::{Deserialize, Serialize};

use super::{stats::Histogram, LinkLock, LinkOptions, LockError, MutexLock, Strategy};

/// What one owner does.
#[derive(Debug, Clone)]
pub struct WorkerOpts {
    pub strategy: Strategy,
    pub lock: PathBuf,
    pub iters: u64,
    /// Read-modify-write this file (a decimal number) on every acquisition.
    pub counter: Option<PathBuf>,
    /// LinkLock's lifetime (the default otherwise).
    pub lifetime: Option<Duration>,
    /// Give up waiting for one acquisition after this long.
    pub timeout: Option<Duration>,
    /// Keep cycling until this long has passed, also after `iters` cycles (benchmarks: a few
    /// cycles in a fresh thread or process measure its cold start, not the lock).
    pub min_time: Option<Duration>,
}

/// What one owner (or several, merged) measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// Acquisitions made.
    pub acquired: u64,
    /// Wall time from this owner's start (the common start, or later if it was late) to its last
    /// release, ns (merged: the longest).
    pub elapsed_ns: u64,
    /// How long each acquire waited, ns.
    pub waits: Histogram,
}

impl Report {
    pub(crate) fn merge(&mut self, other: &Report) {
        self.acquired += other.acquired;
        self.elapsed_ns = self.elapsed_ns.max(other.elapsed_ns);
        self.waits.merge(&other.waits);
    }

    /// Acquire/release cycles per second, all owners together.
    pub fn throughput(&self) -> f64 {
        if self.elapsed_ns == 0 {
            0.0
        } else {
            self.acquired as f64 * 1e9 / self.elapsed_ns as f64
        }
    }
}

/// CLOCK_MONOTONIC in ns: one clock for every process on the machine, so a parent can give its
/// children a common start instant.
pub(crate) fn monotonic_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
    })
}

fn wait_until(start_ns: u64) {
    loop {
        let now = monotonic_ns();
        if now >= start_ns {
            return;
        }
        std::thread::sleep(Duration::from_nanos((start_ns - now).min(1_000_000)));
    }
}

fn bump(counter: &Path) -> Result<(), LockError> {
    // Deliberately two separate calls: without the lock, concurrent owners lose increments.
    let mut text = String::new();
    std::fs::File::open(counter)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| LockError::io("reading the counter", counter, e))?;
    let n: u64 = text.trim().parse().map_err(|_| {
        LockError::BadInput(format!(
            "counter file {} holds {text:?}, not a number",
            counter.display()
        ))
    })?;
    std::fs::write(counter, format!("{}\n", n + 1))
        .map_err(|e| LockError::io("writing the counter", counter, e))
}

/// Runs one owner: `iters` acquire/(bump)/release cycles, starting at `start_ns` (monotonic).
pub fn run(opts: &WorkerOpts, shared: &MutexLock, start_ns: u64) -> Result<Report, LockError> {
    let mut lock = match (opts.strategy, opts.lifetime) {
        (Strategy::Link, Some(lifetime)) => Box::new(LinkLock::new(
            &opts.lock,
            LinkOptions {
                lifetime,
                ..LinkOptions::default()
            },
        )?),
        (s, _) => s.open(&opts.lock, shared)?,
    };
    let mut report = Report::default();
    wait_until(start_ns);
    // From when this owner really began: a child that started late (a loaded machine) must not
    // count its lateness as time spent locking.
    let begin = monotonic_ns();
    let min_ns = opts.min_time.map_or(0, |t| t.as_nanos() as u64);
    let mut cycles = 0u64;
    while cycles < opts.iters || monotonic_ns().saturating_sub(begin) < min_ns {
        cycles += 1;
        let t = Instant::now();
        lock.acquire(opts.timeout)?;
        report.waits.record(t.elapsed().as_nanos() as u64);
        let bumped = match &opts.counter {
            Some(c) => bump(c),
            None => Ok(()),
        };
        lock.release()?;
        bumped?;
        report.acquired += 1;
    }
    report.elapsed_ns = monotonic_ns().saturating_sub(begin);
    Ok(report)
}

/// `threads` owners in this process, `iters` cycles each, merged.
pub fn run_threads(opts: &WorkerOpts, threads: usize) -> Result<Report, LockError> {
    let shared = MutexLock::new();
    // Room for the threads to start before the clock starts.
    let start = monotonic_ns() + 2_000_000;
    let results: Vec<Result<Report, LockError>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| s.spawn(|| run(opts, &shared, start)))
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(LockError::BadInput("a lock worker thread panicked".into()))
                })
            })
            .collect()
    });
    let mut total = Report::default();
    for r in results {
        total.merge(&r?);
    }
    Ok(total)
}

/// `procs` owners as `racelab __lockbench` processes, `iters` cycles each, merged. `racelab` is
/// the binary. Every child is waited for, also when one fails.
pub fn run_processes(racelab: &Path, opts: &WorkerOpts, procs: usize) -> Result<Report, LockError> {
    // Process start-up (tens of ms under load) must not count: the children wait for this instant.
    let start = monotonic_ns() + 50_000_000 + 10_000_000 * procs as u64;
    let mut children = Vec::new();
    for _ in 0..procs {
        let mut cmd = Command::new(racelab);
        cmd.arg("__lockbench")
            .arg("--strategy")
            .arg(opts.strategy.name())
            .arg("--lock")
            .arg(&opts.lock)
            .arg("--iters")
            .arg(opts.iters.to_string())
            .arg("--start-ns")
            .arg(start.to_string());
        if let Some(c) = &opts.counter {
            cmd.arg("--counter").arg(c);
        }
        if let Some(l) = opts.lifetime {
            cmd.arg("--lifetime-ms").arg(l.as_millis().to_string());
        }
        if let Some(t) = opts.timeout {
            cmd.arg("--timeout-ms").arg(t.as_millis().to_string());
        }
        if let Some(t) = opts.min_time {
            cmd.arg("--min-ms").arg(t.as_millis().to_string());
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match cmd.spawn() {
            Ok(c) => children.push(c),
            Err(e) => {
                for mut c in children {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                return Err(LockError::io("starting a lock worker process", racelab, e));
            }
        }
    }
    let mut total = Report::default();
    let mut failures = Vec::new();
    for c in children {
        match c.wait_with_output() {
            Ok(out) if out.status.success() => {
                match serde_json::from_slice::<Report>(&out.stdout) {
                    Ok(r) => total.merge(&r),
                    Err(e) => failures.push(format!(
                        "unreadable report ({e}): {}",
                        String::from_utf8_lossy(&out.stdout)
                    )),
                }
            }
            Ok(out) => failures.push(format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => failures.push(format!("waiting for it: {e}")),
        }
    }
    if failures.is_empty() {
        Ok(total)
    } else {
        Err(LockError::BadInput(format!(
            "{} of {procs} lock worker processes ({} {}) failed:\n  {}",
            failures.len(),
            racelab.display(),
            opts.strategy.name(),
            failures.join("\n  ")
        )))
    }
}
