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
//! With `nemesis`, the variant's declared faults happen for real at random step boundaries of
//! each run (see [`super::nemesis`]): SIGKILL, SIGSTOP/SIGCONT, the signal and its follow-up
//! kill, each on the target's worker process; the result counts the runs each fault landed in.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::fsinfo::{fs_info, FsInfo};
use super::nemesis::Plan;
use super::process::{CallFailure, ProcessExecutor, Worker};
use super::{ActorMode, RealFs};
use racelab_core::error::Error;
use racelab_core::model::world::{OpCtx, Signals, Sql, World};
use racelab_core::model::{Machine, EPOCH_MS};
use racelab_core::schedule::Schedule;
use racelab_lang::ir::{Errno, FaultKind, Op, Program, Signal, Value};

/// How to stress.
#[derive(Debug, Clone, Copy)]
pub struct StressConfig {
    pub runs: u64,
    pub chaos: bool,
    pub mode: ActorMode,
    /// Runs in parallel.
    pub jobs: usize,
    pub seed: u64,
    /// Make the variant's declared faults real at random moments of every run.
    pub nemesis: bool,
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

/// What a stress campaign measured, on any world: `Env` says where and how it ran
/// ([`FsStress`] on a filesystem, `DbInfo` on a database server).
#[derive(Debug, Clone)]
pub struct Stress<Env> {
    pub runs: u64,
    pub seconds: f64,
    pub rates: Vec<InvariantRate>,
    /// The first run (by run number) that broke something: its schedule and trace.
    pub first_failure: Option<(u64, Schedule, reports::Trace)>,
    pub env: Env,
}

impl<Env> Stress<Env> {
    pub fn runs_per_second(&self) -> f64 {
        self.runs as f64 / self.seconds.max(1e-9)
    }
}

/// Where and how a stress campaign on a filesystem ran.
#[derive(Debug, Clone)]
pub struct FsStress {
    pub fs: FsInfo,
    pub chaos: bool,
    pub mode: ActorMode,
    /// With the nemesis: each declared fault's name and the number of runs it landed in
    /// (empty without the nemesis).
    pub landed: Vec<(String, u64)>,
    /// The nemesis's base seed (run `i` draws its moments from `seed + i`), when it ran.
    pub nemesis_seed: Option<u64>,
}

/// A stress campaign on a filesystem.
pub type StressResult = Stress<FsStress>;

/// The 95% Wilson score interval for `hits` successes in `runs` trials.
pub(crate) fn wilson(hits: u64, runs: u64) -> (f64, f64) {
    if runs == 0 {
        return (0.0, 1.0);
    }
    let (n, p, z) = (runs as f64, hits as f64 / runs as f64, 1.96_f64);
    let denom = 1.0 + z * z / n;
    let center = (p + z * z / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) / n) + z * z / (4.0 * n * n)).sqrt() / denom;
    ((center - half).max(0.0), (center + half).min(1.0))
}

/// One free run's outcome, on any world.
pub(crate) struct RunOutcome {
    /// The invariants it broke.
    pub broken: Vec<String>,
    /// Which declared faults the nemesis landed (empty without it).
    pub landed: Vec<bool>,
    /// The order its steps took, as a schedule.
    pub schedule: Vec<u8>,
    pub trace: Option<reports::Trace>,
}

/// What free runs measured, on any world: every invariant's rate (the program's, then any other
/// that broke) and the first run, by run number, that broke something. `runs` are in run order.
pub(crate) fn tally(
    prog: &Program,
    runs: &[(u64, &RunOutcome)],
) -> (Vec<InvariantRate>, Option<(u64, Schedule, reports::Trace)>) {
    let mut names: Vec<String> = prog.invariants.iter().map(|i| i.name.clone()).collect();
    for (_, o) in runs {
        for b in &o.broken {
            if !names.contains(b) {
                names.push(b.clone());
            }
        }
    }
    let n = runs.len() as u64;
    let rates = names
        .into_iter()
        .map(|invariant| {
            let hits = runs
                .iter()
                .filter(|(_, o)| o.broken.contains(&invariant))
                .count() as u64;
            let (low, high) = wilson(hits, n);
            InvariantRate {
                invariant,
                hits,
                runs: n,
                low,
                high,
            }
        })
        .collect();
    let first_failure = runs
        .iter()
        .find(|(_, o)| !o.broken.is_empty())
        .and_then(|(i, o)| {
            let schedule = Schedule::of(prog, o.broken.first().cloned(), o.schedule.clone());
            o.trace.clone().map(|t| (*i, schedule, t))
        });
    (rates, first_failure)
}

/// The stress runs' thread pool of `jobs` threads, kept for the life of the process: a worker
/// process is tied to the thread that started it (PR_SET_PDEATHSIG), so pool threads that
/// outlive one `stress` call let a loop of calls (the suite's rows, under one
/// [`super::process::Reuse`]) reset its actors' processes instead of starting new ones, which
/// is most of a short run's cost in a slow guest.
fn pool_of(jobs: usize) -> Result<Arc<rayon::ThreadPool>, String> {
    static POOLS: Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(Vec::new());
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, pool)) = pools.iter().find(|(n, _)| *n == jobs) {
        return Ok(Arc::clone(pool));
    }
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(jobs)
            .thread_name(|i| format!("racelab-stress-{i}"))
            .build()
            .map_err(|e| e.to_string())?,
    );
    pools.push((jobs, Arc::clone(&pool)));
    Ok(pool)
}

/// Runs `cfg.runs` free-running executions of `prog` under `roots[0]` (each actor through its
/// client's mount when there are several, see [`super::actor_roots`]), `progress` after each.
/// Bad input without a directory; what the filesystem, a worker or the run could not do is
/// infrastructure.
pub fn stress(
    prog: &Arc<Program>,
    roots: &[PathBuf],
    cfg: &StressConfig,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<StressResult, Error> {
    let root: &Path = roots
        .first()
        .map(PathBuf::as_path)
        .ok_or_else(|| Error::bad_input("no directory to run in"))?;
    let env = fs_info(root).map_err(|e| format!("statfs {}: {e}", root.display()))?;
    let steps = cfg.nemesis.then(|| super::nemesis::expected_steps(prog));
    let start = Instant::now();
    // Each pool thread keeps its actors' processes from run to run (reset between runs); they
    // end with this call.
    let _reuse = super::process::Reuse::here();
    let pool = pool_of(cfg.jobs.max(1))?;
    let outcomes: Vec<Result<RunOutcome, String>> = pool.install(|| {
        (0..cfg.runs)
            .into_par_iter()
            .map(|i| {
                if let Some(sig) = super::cancel::requested() {
                    return Err(format!("interrupted by signal {sig}"));
                }
                let r = super::process::with_reuse(|| {
                    one_run(prog, roots, cfg, steps, cfg.seed.wrapping_add(i))
                });
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
    let runs = ok.len() as u64;
    let numbered: Vec<(u64, &RunOutcome)> =
        ok.iter().enumerate().map(|(i, o)| (i as u64, o)).collect();
    let (rates, first_failure) = tally(prog, &numbered);
    let landed = if cfg.nemesis {
        prog.faults
            .iter()
            .enumerate()
            .map(|(f, fault)| {
                (
                    fault.name.clone(),
                    ok.iter().filter(|o| o.landed[f]).count() as u64,
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Stress {
        runs,
        seconds,
        rates,
        first_failure,
        env: FsStress {
            fs: env,
            chaos: cfg.chaos,
            mode: cfg.mode,
            landed,
            nemesis_seed: cfg.nemesis.then_some(cfg.seed),
        },
    })
}

/// Performs one actor's real operations: its own thread's syscalls, or its worker process.
enum Performer {
    Thread(RealFs),
    Process(Worker),
}

impl Performer {
    fn perform(
        &mut self,
        actor: usize,
        op: Op,
        args: &[Value],
        now: i64,
    ) -> Result<Result<Value, Errno>, CallFailure> {
        match self {
            Performer::Thread(fs) => fs
                .perform(op, args, &OpCtx { now, actor })
                .map_err(CallFailure::Operation),
            Performer::Process(w) => w.perform(op, args, now),
        }
    }

    /// Makes a fault real: on a worker process, the real signal; on a thread (which cannot be
    /// killed or stopped alone) it is emulated, as the thread executor does: the machine stops
    /// driving the actor.
    fn fault(&mut self, fault: &FaultKind, handled: bool) -> Result<(), String> {
        match self {
            Performer::Thread(_) => Ok(()),
            Performer::Process(w) => w.fault(fault, handled),
        }
    }

    fn handler(&mut self, signal: Signal, installed: bool) -> Result<(), String> {
        match self {
            Performer::Thread(_) => Ok(()),
            Performer::Process(w) => w.handler(signal, installed),
        }
    }
}

/// The machine's world in a free run: invariants observe the run directory; faults and signal
/// handlers go to the target actor's performer. A performer is locked by its driver only while
/// it performs a real call (outside the machine's lock), and a fault never lands on an actor in
/// flight, so taking it here, under the machine's lock, never waits for a call.
struct FreeRunFs {
    observer: RealFs,
    performers: Vec<Arc<Mutex<Performer>>>,
}

impl FreeRunFs {
    fn performer(&self, actor: usize) -> Result<std::sync::MutexGuard<'_, Performer>, String> {
        let p = self
            .performers
            .get(actor)
            .ok_or_else(|| format!("no performer for actor {actor}"))?;
        Ok(p.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl World for FreeRunFs {
    fn perform(
        &mut self,
        op: Op,
        args: &[Value],
        cx: &OpCtx,
    ) -> Result<Result<Value, Errno>, String> {
        Ok(self
            .performer(cx.actor)?
            .perform(cx.actor, op, args, cx.now)?)
    }

    fn observe_exists(&self, path: &str) -> bool {
        self.observer.observe_exists(path)
    }

    fn observe_contents(&self, path: &str) -> Option<String> {
        self.observer.observe_contents(path)
    }
}

impl Signals for FreeRunFs {
    fn fault(&mut self, actor: usize, fault: &FaultKind, handled: bool) -> Result<(), String> {
        self.performer(actor)?.fault(fault, handled)
    }

    fn handler(&mut self, actor: usize, signal: Signal, installed: bool) -> Result<(), String> {
        self.performer(actor)?.handler(signal, installed)
    }
}

impl Sql for FreeRunFs {}

fn one_run(
    prog: &Arc<Program>,
    roots: &[PathBuf],
    cfg: &StressConfig,
    nemesis_steps: Option<usize>,
    seed: u64,
) -> Result<RunOutcome, String> {
    let root = &roots[0];
    let dir = tempfile::Builder::new()
        .prefix("racelab-stress-")
        .tempdir_in(root)
        .map_err(|e| {
            format!(
                "cannot create a run directory under {}: {e}",
                root.display()
            )
        })?;
    let actor_roots = super::actor_roots(prog, roots, dir.path().file_name().unwrap_or_default());
    RealFs::open(dir.path())
        .and_then(|mut fs| fs.populate(&prog.fs, EPOCH_MS))
        .map_err(|e| e.to_string())?;
    let performers: Vec<Performer> = match cfg.mode {
        ActorMode::Threads => actor_roots
            .iter()
            .map(|r| {
                RealFs::open(r)
                    .map(Performer::Thread)
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?,
        ActorMode::Processes => ProcessExecutor::start(&actor_roots)?
            .into_workers()
            .into_iter()
            .map(Performer::Process)
            .collect(),
    };
    let performers: Vec<Arc<Mutex<Performer>>> = performers
        .into_iter()
        .map(|p| Arc::new(Mutex::new(p)))
        .collect();
    let observer = RealFs::open(dir.path()).map_err(|e| e.to_string())?;
    let mut machine = Machine::with_fs(
        Arc::clone(prog),
        FreeRunFs {
            observer,
            performers: performers.clone(),
        },
    );
    machine.record_details();
    let plan = Arc::new(nemesis_steps.map(|steps| Plan::draw(prog, steps, seed)));
    let shared = Arc::new((Mutex::new(machine), Condvar::new()));
    let handles: Vec<_> = performers
        .into_iter()
        .enumerate()
        .map(|(a, performer)| {
            let shared = Arc::clone(&shared);
            let plan = Arc::clone(&plan);
            let chaos = cfg
                .chaos
                .then(|| Chaos::new(seed.wrapping_mul(31).wrapping_add(a as u64)));
            // Durations (`sleep between`) are drawn from the run's seed, one coin per actor.
            let coin = Chaos::new(seed.wrapping_mul(131).wrapping_add(a as u64));
            std::thread::Builder::new()
                .name(format!("racelab-stress-{a}"))
                .spawn(move || {
                    drive(
                        a,
                        &performer,
                        &shared,
                        (chaos, coin),
                        Option::as_ref(&*plan),
                    )
                })
        })
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot start actor threads: {e}"))?;
    let mut failure = None;
    for h in handles {
        if let Err(e) = h
            .join()
            .unwrap_or_else(|_| Err("an actor thread panicked".into()))
        {
            failure.get_or_insert(e);
        }
    }
    let m = shared.0.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = failure.or_else(|| m.infrastructure_error().map(str::to_string)) {
        return Err(e);
    }
    let broken: Vec<String> = m.broken().iter().map(|b| b.invariant.clone()).collect();
    let trace = (!broken.is_empty()).then(|| racelab_core::replay::trace_of(&*m));
    let landed = super::nemesis::landed(prog, m.schedule());
    Ok(RunOutcome {
        broken,
        landed,
        schedule: m.schedule().to_vec(),
        trace,
    })
}

/// One actor's driver thread: wait for its turn to be possible, take internal steps under the
/// lock, and real operations outside it. At every boundary it passes, the nemesis (if any) may
/// land a due fault on any actor.
fn drive(
    a: usize,
    performer: &Mutex<Performer>,
    shared: &(Mutex<Machine<FreeRunFs>>, Condvar),
    (mut chaos, mut coin): (Option<Chaos>, Chaos),
    plan: Option<&Plan>,
) -> Result<(), String> {
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
            let digit = if m.is_runnable(d) && coin.next() % 2 == 1 {
                d
            } else {
                a
            };
            m.step(digit);
            cv.notify_all();
            continue;
        }
        if plan.is_some_and(|p| p.strike(&mut m)) {
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
                // The performer's lock is held only for the call, never with the machine's.
                let result = performer
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .perform(a, op, &args, now);
                if let Err(CallFailure::Worker(e)) = &result {
                    // The worker died under us: an infrastructure failure, not a finding.
                    let mut m = lock.lock().unwrap_or_else(|e| e.into_inner());
                    m.complete(a, Err(e.to_string()));
                    cv.notify_all();
                    return Err(e.to_string());
                }
                m = lock.lock().unwrap_or_else(|e| e.into_inner());
                m.complete(a, result.map_err(String::from));
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
