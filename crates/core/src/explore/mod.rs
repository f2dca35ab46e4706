//! Exploration: drive a scenario's machine under shuttle's schedulers and loom, collect findings.
//!
//! Each engine runs actors as its own threads (shuttle tasks, loom threads) over one shared
//! [`Machine`]: an actor takes the machine's lock (the scheduling point), steps if it is
//! runnable, and otherwise waits on its own condition variable until a step makes it runnable.
//! The engine thus chooses every interleaving of steps; the machine decides what is runnable
//! and when virtual time moves. racelab records its own schedule, so findings replay on any
//! engine or backend.

pub mod chooser;
pub mod collect;
pub mod loom_engine;
pub mod native;
pub mod parallel;
pub mod portfolio;
pub mod shuttle_engine;
mod threads;

use std::sync::Arc;
use std::time::Duration;

pub use collect::{Exploration, Found};
use racelab_lang::ir::Program;

/// Which engine decides the interleavings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    ShuttleRandom,
    ShuttlePct,
    ShuttleDfs,
    Loom,
    NativeRandom,
    NativePct,
    NativeDfs,
}

impl EngineKind {
    pub const ALL: [EngineKind; 7] = [
        EngineKind::ShuttleRandom,
        EngineKind::ShuttlePct,
        EngineKind::ShuttleDfs,
        EngineKind::Loom,
        EngineKind::NativeRandom,
        EngineKind::NativePct,
        EngineKind::NativeDfs,
    ];

    /// The name used in `summary.json` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::ShuttleRandom => "shuttle-random",
            EngineKind::ShuttlePct => "shuttle-pct",
            EngineKind::ShuttleDfs => "shuttle-dfs",
            EngineKind::Loom => "loom",
            EngineKind::NativeRandom => "native-random",
            EngineKind::NativePct => "native-pct",
            EngineKind::NativeDfs => "native-dfs",
        }
    }

    pub fn from_name(s: &str) -> Option<EngineKind> {
        EngineKind::ALL.into_iter().find(|e| e.name() == s)
    }
}

/// How much exploring one engine run may do.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Budget {
    /// The most executions (schedules) to explore.
    pub schedules: u64,
    /// The most wall-clock time to spend.
    pub time: Duration,
}

impl Budget {
    pub fn new(schedules: u64, time: Duration) -> Budget {
        Budget { schedules, time }
    }
}

/// Why a search that ran out of distinct states is not a proof.
fn state_budget_spent(max_states: u64) -> String {
    format!("the state budget of {max_states} distinct states ran out before the search finished, so this is not a proof; raise it with --max-states")
}

/// Why a search that ran out of time after `states` distinct states is not a proof.
fn time_budget_spent(cfg: &EngineConfig, states: u64) -> String {
    format!(
        "the time budget ({:.0}s) ran out after {states} distinct states, so this is not a proof",
        cfg.budget.time.as_secs_f64()
    )
}

/// One engine run's configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct EngineConfig {
    pub kind: EngineKind,
    pub budget: Budget,
    /// Seed for shuttle random and PCT.
    pub seed: u64,
    /// PCT's bug depth (the number of priority change points plus one).
    pub pct_depth: usize,
    /// loom's preemption bound: exhaustive among schedules with at most this many preemptions.
    pub preemption_bound: usize,
    /// native-dfs: the most distinct states to expand before giving up on a proof.
    pub max_states: u64,
    /// native-dfs: partial-order reduction with sleep sets (off by default: it skips transitions,
    /// never states, and costs more than it saves on the built-in scenarios).
    pub por: bool,
    /// native-dfs: threads for the proof search (`parallel.rs`); 1 searches sequentially only.
    pub workers: usize,
}

impl EngineConfig {
    pub fn new(kind: EngineKind, budget: Budget) -> EngineConfig {
        EngineConfig {
            kind,
            budget,
            seed: 0x5eed,
            pct_depth: 3,
            preemption_bound: 2,
            max_states: native::DEFAULT_MAX_STATES,
            por: false,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// native-dfs's threads for the proof search (at least 1).
    pub fn workers(mut self, workers: usize) -> EngineConfig {
        self.workers = workers.max(1);
        self
    }
    pub fn seed(mut self, seed: u64) -> EngineConfig {
        self.seed = seed;
        self
    }
    pub fn preemption_bound(mut self, bound: usize) -> EngineConfig {
        self.preemption_bound = bound;
        self
    }
    pub fn max_states(mut self, n: u64) -> EngineConfig {
        self.max_states = n;
        self
    }
    pub fn por(mut self, on: bool) -> EngineConfig {
        self.por = on;
        self
    }

    /// The bound this run explores within, in words for reports.
    pub fn describe_bound(&self) -> String {
        let budget = format!(
            "{} schedules or {:.0}s",
            self.budget.schedules,
            self.budget.time.as_secs_f64()
        );
        match self.kind {
            EngineKind::ShuttleRandom | EngineKind::NativeRandom => {
                format!("random, seed {:#x}, {budget}", self.seed)
            }
            EngineKind::NativePct => format!(
                "PCT depth {}, seed {:#x}, {budget}",
                self.pct_depth, self.seed
            ),
            EngineKind::NativeDfs => format!(
                "stateful depth-first search{}, at most {} states or {:.0}s",
                if self.por { " with sleep sets" } else { "" },
                self.max_states,
                self.budget.time.as_secs_f64()
            ),
            EngineKind::ShuttlePct => format!(
                "PCT depth {}, seed {:#x}, {budget}",
                self.pct_depth, self.seed
            ),
            EngineKind::ShuttleDfs => format!("depth-first, {budget}"),
            EngineKind::Loom => format!("preemption bound {}, {budget}", self.preemption_bound),
        }
    }
}

/// Why an engine could not run a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// Explores `prog` with one engine. Never panics on a scenario; a refusal (too many actors for
/// loom) comes back as `Err` with a message that names the alternative.
pub fn explore(prog: &Arc<Program>, cfg: &EngineConfig) -> Result<Exploration, Refusal> {
    match cfg.kind {
        EngineKind::Loom => loom_engine::explore(prog, cfg),
        EngineKind::NativeRandom | EngineKind::NativePct | EngineKind::NativeDfs => {
            Ok(native::explore(prog, cfg))
        }
        _ => Ok(shuttle_engine::explore(prog, cfg)),
    }
}

/// Installs, once per process and in this order, shuttle's global panic hook (which shuttle
/// would otherwise install lazily at its first run, on top of whatever is there) and then
/// racelab's, which silences the payload that ends a loom model early. Running engines in
/// parallel would otherwise race on the hook chain, and shuttle's hook would report loom's
/// early stop as a failing shuttle task.
pub(crate) fn install_panic_hooks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let mut config = shuttle::Config::new();
        config.silence_warnings = true;
        shuttle::Runner::new(
            shuttle::scheduler::DfsScheduler::new(Some(1), false),
            config,
        )
        .run(|| {});
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info
                .payload()
                .downcast_ref::<loom_engine::StopExploring>()
                .is_none()
            {
                previous(info);
            }
        }));
    });
}
