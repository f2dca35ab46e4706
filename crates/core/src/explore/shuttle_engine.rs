//! The shuttle engines: random, PCT and DFS schedulers driving actors as shuttle tasks.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Instant;

use shuttle::scheduler::{
    DfsScheduler, PctScheduler, RandomScheduler, Schedule as ShuttleSchedule, Scheduler, Task,
    TaskId,
};

use super::collect::{Collector, Exploration};
use super::{EngineConfig, EngineKind};
use racelab_lang::ir::Program;

mod driver {
    super::super::threads::threaded_driver!(shuttle);
}

/// Wraps a shuttle scheduler to end the run when the verdict is settled or the budget is spent,
/// and to tell whether the inner scheduler ran out of schedules (an exhaustive search).
struct Bounded<S> {
    /// Always `Some` until drop; see the `Drop` impl.
    inner: Option<S>,
    stop: Arc<AtomicBool>,
    started: Arc<AtomicU64>,
    exhausted: Arc<AtomicBool>,
    /// The runnable actors of the current execution, as a mask over task ids (see `threads.rs`).
    enabled: Arc<AtomicU64>,
    max: u64,
    deadline: Instant,
}

impl<S: Scheduler> Scheduler for Bounded<S> {
    fn new_execution(&mut self) -> Option<ShuttleSchedule> {
        if self.stop.load(Ordering::SeqCst)
            || self.started.load(Ordering::SeqCst) >= self.max
            || Instant::now() >= self.deadline
        {
            return None;
        }
        match self.inner.as_mut()?.new_execution() {
            Some(s) => {
                self.started.fetch_add(1, Ordering::SeqCst);
                Some(s)
            }
            None => {
                self.exhausted.store(true, Ordering::SeqCst);
                None
            }
        }
    }
    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        is_yielding: bool,
    ) -> Option<TaskId> {
        // Offer only tasks whose choice (an actor's step, a fault) can be taken, so every
        // choice is a step. Where none of those can run (the execution has ended, or a step is
        // still waking the threads it made runnable) the order is immaterial: continue the
        // current task, else the first, and so add no branches to DFS.
        let mask = self.enabled.load(Ordering::SeqCst);
        let finished = mask & (1 << 63) != 0;
        let offered: Vec<&Task> = if finished {
            Vec::new()
        } else {
            runnable
                .iter()
                .copied()
                .filter(|t| mask & (1 << usize::from(t.id()).min(62)) != 0)
                .collect()
        };
        let offered = if offered.is_empty() {
            let keep = runnable
                .iter()
                .copied()
                .find(|t| Some(t.id()) == current)
                .or_else(|| runnable.first().copied());
            keep.into_iter().collect()
        } else {
            offered
        };
        self.inner
            .as_mut()?
            .next_task(&offered, current, is_yielding)
    }
    fn next_u64(&mut self) -> u64 {
        self.inner.as_mut().map_or(0, Scheduler::next_u64)
    }
}

impl<S> Drop for Bounded<S> {
    fn drop(&mut self) {
        // shuttle's RandomScheduler prints "failing seed" when dropped before it ran out of
        // iterations, assuming a test failed. Stopping early is our normal case, and racelab
        // reports its own replay tokens, so the scheduler is forgotten instead (a few bytes).
        if !self.exhausted.load(Ordering::SeqCst) {
            std::mem::forget(self.inner.take());
        }
    }
}

pub fn explore(prog: &Arc<Program>, cfg: &EngineConfig) -> Exploration {
    super::install_panic_hooks();
    let start = Instant::now();
    let max = cfg.budget.schedules.max(1);
    let max_usize = usize::try_from(max).unwrap_or(usize::MAX);
    match cfg.kind {
        EngineKind::ShuttleRandom => run(
            prog,
            cfg,
            RandomScheduler::new_from_seed(cfg.seed, max_usize),
            start,
        ),
        EngineKind::ShuttlePct => run(
            prog,
            cfg,
            PctScheduler::new_from_seed(cfg.seed, cfg.pct_depth, max_usize),
            start,
        ),
        EngineKind::ShuttleDfs => run(prog, cfg, DfsScheduler::new(Some(max_usize), false), start),
        other => unreachable!("{} is not a shuttle scheduler", other.name()),
    }
}

fn run<S: Scheduler + 'static>(
    prog: &Arc<Program>,
    cfg: &EngineConfig,
    inner: S,
    start: Instant,
) -> Exploration {
    let collector = Arc::new(StdMutex::new(Collector::new(Arc::clone(prog))));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicU64::new(0));
    let exhausted = Arc::new(AtomicBool::new(false));
    let enabled = Arc::new(AtomicU64::new(0));
    let taken = Arc::new(AtomicUsize::new(0));
    let scheduler = Bounded {
        enabled: Arc::clone(&enabled),
        inner: Some(inner),
        stop: Arc::clone(&stop),
        started: Arc::clone(&started),
        exhausted: Arc::clone(&exhausted),
        max: cfg.budget.schedules.max(1),
        deadline: start + cfg.budget.time,
    };
    let mut config = shuttle::Config::new();
    config.silence_warnings = true;
    // The main task runs the driver (and actor 0 when loom's limit is reached); give it room.
    config.stack_size = 1 << 20;
    // Our machine bounds steps itself (and reports a livelock); shuttle must not cut executions short.
    config.max_steps = shuttle::MaxSteps::None;
    let runner = shuttle::Runner::new(scheduler, config);
    let initial = Arc::new(crate::model::Machine::new(Arc::clone(prog)));
    let (c, s) = (Arc::clone(&collector), Arc::clone(&stop));
    runner.run(move || {
        let m = driver::run_execution(&initial, &enabled, &taken);
        let mut col = c.lock().unwrap_or_else(|e| e.into_inner());
        col.absorb(&m);
        if col.stop {
            s.store(true, Ordering::SeqCst);
        }
    });
    let col = collector.lock().unwrap_or_else(|e| e.into_inner());
    // DFS with no remaining schedule covered everything; random and PCT never can.
    let exhaustive = cfg.kind == EngineKind::ShuttleDfs && exhausted.load(Ordering::SeqCst);
    Exploration {
        engine: cfg.kind.name(),
        schedules: col.executions,
        seconds: start.elapsed().as_secs_f64(),
        exhaustive,
        findings: col.findings.clone(),
        bound: cfg.describe_bound(),
        states: None,
        covered: None,
    }
}

/// A shuttle scheduler that follows a recorded portable schedule: before each step it picks the
/// task of the choice the schedule names next (and, once the schedule is spent, the first
/// runnable task, so the execution runs to its end).
struct Follow {
    steps: Vec<u8>,
    /// Steps taken so far, published by the driver after every step.
    taken: Arc<AtomicUsize>,
    /// Task id of choice 0.
    offset: usize,
    started: bool,
}

impl Scheduler for Follow {
    fn new_execution(&mut self) -> Option<ShuttleSchedule> {
        if std::mem::replace(&mut self.started, true) {
            return None;
        }
        Some(ShuttleSchedule::new(0))
    }
    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        _is_yielding: bool,
    ) -> Option<TaskId> {
        let next = self
            .steps
            .get(self.taken.load(Ordering::SeqCst))
            .map(|&c| TaskId::from(usize::from(c) + self.offset));
        let wanted = next.and_then(|w| runnable.iter().find(|t| t.id() == w));
        let fallback = runnable
            .iter()
            .find(|t| Some(t.id()) == current)
            .or_else(|| runnable.first());
        wanted.or(fallback).map(|t| t.id())
    }
    fn next_u64(&mut self) -> u64 {
        0
    }
}

/// Replays `steps` (a portable schedule's choices) with actors as shuttle tasks: the same
/// threaded driver the shuttle engines explore with, steered by [`Follow`]. Returns the
/// machine at the end, or why the schedule could not be followed.
pub fn replay(prog: &Arc<Program>, steps: &[u8]) -> Result<crate::model::Machine, String> {
    super::install_panic_hooks();
    let initial = Arc::new(crate::model::Machine::new(Arc::clone(prog)));
    let offset = 1 - usize::from(initial.choice_count() >= super::threads::MAX_ACTORS);
    let taken = Arc::new(AtomicUsize::new(0));
    let enabled = Arc::new(AtomicU64::new(0));
    let follow = Follow {
        steps: steps.to_vec(),
        taken: Arc::clone(&taken),
        offset,
        started: false,
    };
    let scheduler = Bounded {
        enabled: Arc::clone(&enabled),
        inner: Some(follow),
        stop: Arc::new(AtomicBool::new(false)),
        started: Arc::new(AtomicU64::new(0)),
        exhausted: Arc::new(AtomicBool::new(false)),
        max: 1,
        deadline: Instant::now() + std::time::Duration::from_secs(600),
    };
    let mut config = shuttle::Config::new();
    config.silence_warnings = true;
    config.stack_size = 1 << 20;
    config.max_steps = shuttle::MaxSteps::None;
    let result: Arc<StdMutex<Option<crate::model::Machine>>> = Arc::new(StdMutex::new(None));
    let out = Arc::clone(&result);
    shuttle::Runner::new(scheduler, config).run(move || {
        let m = driver::run_execution(&initial, &enabled, &taken);
        *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(m);
    });
    let m = result
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .ok_or("shuttle ran no execution")?;
    let followed = m.schedule().len() >= steps.len() && m.schedule()[..steps.len()] == *steps;
    if !followed {
        let at = m
            .schedule()
            .iter()
            .zip(steps)
            .position(|(a, b)| a != b)
            .unwrap_or(m.schedule().len().min(steps.len()));
        return Err(format!("shuttle could not follow the schedule: at step {} it took choice {:?}, the schedule says {:?}", at + 1, m.schedule().get(at), steps.get(at)));
    }
    Ok(m)
}
