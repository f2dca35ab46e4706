//! The loom engine: exhaustive exploration within a preemption bound.
//!
//! loom has no way to stop a model early, so when the verdict is settled the model closure
//! panics with a private payload that this module catches (and keeps out of the panic output).

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Instant;

use super::collect::{Collector, Exploration};
use super::{EngineConfig, Refusal};
use racelab_lang::ir::Program;

mod driver {
    super::super::threads::threaded_driver!(loom);
}

pub use super::threads::MAX_ACTORS;

/// The panic payload that ends a loom model early.
pub(crate) struct StopExploring;

pub fn explore(prog: &Arc<Program>, cfg: &EngineConfig) -> Result<Exploration, Refusal> {
    // Every actor and every fault is a loom thread, and so is the decision choice (durations, answers).
    let threads = prog.actors.len() + prog.faults.len() + usize::from(prog.has_decision_choice());
    if threads > MAX_ACTORS {
        let faults = if prog.faults.is_empty() {
            String::new()
        } else {
            format!(" and {} faults", prog.faults.len())
        };
        return Err(Refusal(format!(
            "loom explores at most {MAX_ACTORS} actors and faults together (its MAX_THREADS), and `{}` has {} actors{faults}; explore it with shuttle-random, shuttle-pct or shuttle-dfs, which have no such limit, or use fewer actors",
            prog.scenario,
            prog.actors.len()
        )));
    }
    super::install_panic_hooks();
    let start = Instant::now();
    let collector = Arc::new(StdMutex::new(Collector::new(Arc::clone(prog))));

    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(cfg.preemption_bound);
    builder.max_branches = 1_000_000;
    builder.max_permutations =
        Some(usize::try_from(cfg.budget.schedules.max(1)).unwrap_or(usize::MAX));
    builder.max_duration = Some(cfg.budget.time);
    // loom checks the two limits above only every `checkpoint_interval` iterations.
    builder.checkpoint_interval = 1;
    builder.checkpoint_file = None;
    builder.log = false;
    builder.location = false;

    let initial = Arc::new(crate::model::Machine::new(Arc::clone(prog)));
    let c = Arc::clone(&collector);
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        builder.check(move || {
            let m = driver::run_execution(
                &initial,
                &Arc::new(std::sync::atomic::AtomicU64::new(0)),
                &Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            );
            let mut col = c.lock().unwrap_or_else(|e| e.into_inner());
            col.absorb(&m);
            if col.stop {
                drop(col);
                panic::panic_any(StopExploring);
            }
        });
    }));
    let col = collector.lock().unwrap_or_else(|e| e.into_inner());
    let stopped_early = match result {
        Ok(()) => false,
        Err(payload) if payload.downcast_ref::<StopExploring>().is_some() => true,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            return Err(Refusal(format!(
                "loom stopped with an internal error: {msg}"
            )));
        }
    };
    // loom returns normally both when it covered every schedule within the bound and when a
    // budget ran out; only the former is a proof.
    // loom stops before iteration `max_permutations`, so a spent budget shows as one fewer.
    let within_budget =
        col.executions + 1 < cfg.budget.schedules && start.elapsed() < cfg.budget.time;
    Ok(Exploration {
        engine: "loom",
        schedules: col.executions,
        seconds: start.elapsed().as_secs_f64(),
        exhaustive: !stopped_early && within_budget,
        findings: col.findings.clone(),
        bound: cfg.describe_bound(),
        states: None,
        covered: None,
    })
}
