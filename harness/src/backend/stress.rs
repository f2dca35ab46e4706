//! Stress runs: free-running real actors, many runs, reproduction rates with Wilson intervals.
//!
//! No explorer and no turnstile: every actor has its own driver thread, and two ready actors
//! perform their filesystem calls at the same time, in their own threads or worker processes;
//! which one the kernel serves first decides the interleaving. The interpreter only keeps the
//! rest of the world (cells, logs, ghost sections, locks) and virtual time, under a mutex that
//! is never held across a real syscall. With `chaos`, each real operation is preceded, at
//! random, by a short sleep or a yield (in the spirit of rr's chaos mode), which shakes out
//! interleavings a quiet machine never produces.
//!
//! Faults are not injected in stress runs (they are explored on the model and forced on real
//! actors by replay); a scenario's faults are reported as not landed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::fsinfo::{fs_info, FsInfo};
use super::process::{ProcessExecutor, Worker};
use super::{ActorMode, RealFs};
use crate::ir::{Errno, Op, Program, Value};
use crate::model::fs::{Filesystem, OpCtx};
use crate::model::{Machine, EPOCH_MS};
use crate::schedule::Schedule;

/// How to stress.
#[derive(Debug, Clone, Copy)]
pub struct StressConfig {
    pub runs: u64,
    pub chaos: bool,
    pub mode: ActorMode,
    /// Runs in parallel.
    pub jobs: usize,
    pub seed: u64,
}

/// How often one invariant broke.
#[derive(Debug, Clone, PartialEq)]
pub struct InvariantRate {
    pub invariant: String,
    pub hits: u64,
    pub runs: u64,
    /// 95% Wilson score interval for the per-run probability.
    pub low: f64,
    pub high: f64,
}

/// What a stress campaign measured.
#[derive(Debug, Clone)]
pub struct StressResult {
    pub runs: u64,
    pub seconds: f64,
    pub rates: Vec<InvariantRate>,
    /// The first run (by run number) that broke something: its schedule and trace.
    pub first_failure: Option<(u64, Schedule, reports::Trace)>,
    pub env: FsInfo,
    pub chaos: bool,
    pub mode: ActorMode,
}

impl StressResult {
    pub fn runs_per_second(&self) -> f64 {
        self.runs as f64 / self.seconds.max(1e-9)
    }
}

/// The 95% Wilson score interval for `hits` successes in `runs` trials.
pub fn wilson(hits: u64, runs: u64) -> (f64, f64) {
    if runs == 0 {
        return (0.0, 1.0);
    }
    let (n, p, z) = (runs as f64, hits as f64 / runs as f64, 1.96_f64);
    let denom = 1.0 + z * z / n;
    let center = (p + z * z / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) / n) + z * z / (4.0 * n * n)).sqrt() / denom;
    ((center - half).max(0.0), (center + half).min(1.0))
}

/// One run's outcome.
struct RunOutcome {
    broken: Vec<String>,
    schedule: Vec<u8>,
    trace: Option<reports::Trace>,
}

/// Runs `cfg.runs` free-running executions of `prog` under `roots[0]` (each actor through its
/// client's mount when there are several, see [`super::actor_roots`]), `progress` after each.
pub fn stress(prog: &Arc<Program>, roots: &[PathBuf], cfg: &StressConfig, progress: &(dyn Fn(u64) + Sync)) -> Result<StressResult, String> {
    let root: &Path = roots.first().map(PathBuf::as_path).ok_or("no directory to run in")?;
    let env = fs_info(root).map_err(|e| format!("statfs {}: {e}", root.display()))?;
    let start = Instant::now();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(cfg.jobs.max(1)).build().map_err(|e| e.to_string())?;
    let outcomes: Vec<Result<RunOutcome, String>> = pool.install(|| {
        (0..cfg.runs)
            .into_par_iter()
            .map(|i| {
                if let Some(sig) = super::cancel::requested() {
                    return Err(format!("interrupted by signal {sig}"));
                }
                let r = one_run(prog, roots, cfg, cfg.seed.wrapping_add(i));
                progress(i);
                r
            })
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let mut ok = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        ok.push(o?);
    }
    let mut names: Vec<String> = prog.invariants.iter().map(|i| i.name.clone()).collect();
    for o in &ok {
        for b in &o.broken {
            if !names.contains(b) {
                names.push(b.clone());
            }
        }
    }
    let runs = ok.len() as u64;
    let rates = names
        .into_iter()
        .map(|invariant| {
            let hits = ok.iter().filter(|o| o.broken.contains(&invariant)).count() as u64;
            let (low, high) = wilson(hits, runs);
            InvariantRate { invariant, hits, runs, low, high }
        })
        .collect();
    let first_failure = ok.iter().enumerate().find(|(_, o)| !o.broken.is_empty()).and_then(|(i, o)| {
        let schedule = Schedule::of(prog, o.broken.first().cloned(), o.schedule.clone());
        o.trace.clone().map(|t| (i as u64, schedule, t))
    });
    Ok(StressResult { runs, seconds, rates, first_failure, env, chaos: cfg.chaos, mode: cfg.mode })
}

/// Performs one actor's real operations: its own thread's syscalls, or its worker process.
enum Performer {
    Thread(RealFs),
    Process(Worker),
}

impl Performer {
    fn perform(&mut self, actor: usize, op: Op, args: &[Value], now: i64) -> Result<Result<Value, Errno>, String> {
        match self {
            Performer::Thread(fs) => fs.perform(op, args, &OpCtx { now, actor }),
            Performer::Process(w) => w.perform(op, args, now),
        }
    }
}

fn one_run(prog: &Arc<Program>, roots: &[PathBuf], cfg: &StressConfig, seed: u64) -> Result<RunOutcome, String> {
    let root = &roots[0];
    let dir = tempfile::Builder::new().prefix("racelab-stress-").tempdir_in(root).map_err(|e| format!("cannot create a run directory under {}: {e}", root.display()))?;
    let actor_roots = super::actor_roots(prog, roots, dir.path().file_name().unwrap_or_default());
    RealFs::open(dir.path()).and_then(|mut fs| fs.populate(&prog.fs, EPOCH_MS)).map_err(|e| e.to_string())?;
    let performers: Vec<Performer> = match cfg.mode {
        ActorMode::Threads => actor_roots.iter().map(|r| RealFs::open(r).map(Performer::Thread).map_err(|e| e.to_string())).collect::<Result<_, _>>()?,
        ActorMode::Processes => ProcessExecutor::start(&actor_roots)?.into_workers().into_iter().map(Performer::Process).collect(),
    };
    let observer = RealFs::open(dir.path()).map_err(|e| e.to_string())?;
    let mut machine = Machine::with_fs(Arc::clone(prog), observer);
    machine.record_details();
    let shared = Arc::new((Mutex::new(machine), Condvar::new()));
    let handles: Vec<_> = performers
        .into_iter()
        .enumerate()
        .map(|(a, performer)| {
            let shared = Arc::clone(&shared);
            let chaos = cfg.chaos.then(|| Chaos::new(seed.wrapping_mul(31).wrapping_add(a as u64)));
            // Durations (`sleep between`) are drawn from the run's seed, one coin per actor.
            let coin = Chaos::new(seed.wrapping_mul(131).wrapping_add(a as u64));
            std::thread::Builder::new().name(format!("racelab-stress-{a}")).spawn(move || drive(a, performer, &shared, (chaos, coin)))
        })
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot start actor threads: {e}"))?;
    let mut failure = None;
    for h in handles {
        if let Err(e) = h.join().unwrap_or_else(|_| Err("an actor thread panicked".into())) {
            failure.get_or_insert(e);
        }
    }
    let m = shared.0.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = failure {
        return Err(e);
    }
    let broken: Vec<String> = m.broken().iter().map(|b| b.invariant.clone()).collect();
    let trace = (!broken.is_empty()).then(|| crate::replay::trace_of(&*m));
    Ok(RunOutcome { broken, schedule: m.schedule().to_vec(), trace })
}

/// One actor's driver thread: wait for its turn to be possible, take internal steps under the
/// lock, and real operations outside it.
fn drive(a: usize, mut performer: Performer, shared: &(Mutex<Machine<RealFs>>, Condvar), (mut chaos, mut coin): (Option<Chaos>, Chaos)) -> Result<(), String> {
    let (lock, cv) = shared;
    let mut m = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if m.is_finished() || m.status(a).is_over() {
            cv.notify_all();
            return Ok(());
        }
        // This actor's `sleep between` duration is being chosen: its driver tosses the digits
        // (digit 0 is always possible; digit 1, the decision choice, when it fits).
        if let (Some(d), Some(_)) = (m.decision_choice(), m.deciding_actor().filter(|&x| x == a)) {
            let digit = if m.is_runnable(d) && coin.next() % 2 == 1 { d } else { a };
            m.step(digit);
            cv.notify_all();
            continue;
        }
        if !m.is_runnable(a) {
            m = cv.wait(m).unwrap_or_else(|e| e.into_inner());
            continue;
        }
        match m.begin(a) {
            None => m.step(a),
            Some(Err(msg)) => m.complete(a, Err(msg)),
            Some(Ok((op, args, now))) => {
                drop(m);
                if let Some(c) = chaos.as_mut() {
                    c.pause();
                }
                let result = performer.perform(a, op, &args, now);
                if let Err(e) = &result {
                    if e.contains("worker") {
                        // The worker died under us: an infrastructure failure, not a finding.
                        let mut m = lock.lock().unwrap_or_else(|e| e.into_inner());
                        m.complete(a, Err(e.clone()));
                        cv.notify_all();
                        return Err(e.clone());
                    }
                }
                m = lock.lock().unwrap_or_else(|e| e.into_inner());
                m.complete(a, result);
            }
        }
        cv.notify_all();
    }
}

/// Random pauses before real operations: nothing half the time, a yield or a sleep of up to
/// 200 µs otherwise.
struct Chaos {
    state: u64,
}

impl Chaos {
    fn new(seed: u64) -> Chaos {
        Chaos { state: seed | 1 }
    }
    fn next(&mut self) -> u64 {
        // xorshift64*: tiny, seedable, good enough to jitter timings.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pause(&mut self) {
        match self.next() % 4 {
            0 | 1 => {}
            2 => std::thread::yield_now(),
            _ => std::thread::sleep(Duration::from_micros(self.next() % 200)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wilson;

    #[test]
    fn wilson_intervals_match_known_values() {
        // 0 of 10: [0, 0.2775]; 5 of 10: [0.2366, 0.7634]; 100 of 100: [0.9630, 1].
        let close = |a: f64, b: f64| (a - b).abs() < 1e-3;
        let (l, h) = wilson(0, 10);
        assert!(close(l, 0.0) && close(h, 0.2775), "{l} {h}");
        let (l, h) = wilson(5, 10);
        assert!(close(l, 0.2366) && close(h, 0.7634), "{l} {h}");
        let (l, h) = wilson(100, 100);
        assert!(close(l, 0.9630) && close(h, 1.0), "{l} {h}");
    }
}
