//! native-dfs on several cores: a proof search that shares one visited set between workers.
//!
//! Which path first reaches a state depends on thread timing, so a parallel search cannot give
//! the same counterexample twice. It is therefore used only to *prove*: when it expands every
//! reachable state without an invariant breaking, that is the verdict, and the set of states
//! (so their number) is the same whatever the timing. As soon as anything breaks it stops, and
//! the sequential search runs to find, deterministically, the schedule a person will read and
//! replay. "Parallel proves, sequential explains."
//!
//! Workers keep their own stack of states to expand and hand half of it to a shared pool when
//! some worker is idle; the search ends when every worker is idle and the pool is empty. The
//! visited set is sharded by fingerprint so that workers rarely wait for each other.
//!
//! What the cores write in common is kept to a minimum: a state taken from another worker is
//! detached first (`Machine::detach`: its own copies of the parts it shared, its own handle on
//! the program), so that the clones and drops of one worker's states write reference counts
//! that only that worker's core holds; and new states are added to the shared count in
//! batches, not one atomic add on a shared line per state.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use super::EngineConfig;
use crate::model::fingerprint::FingerprintKeys;
use crate::model::Machine;
use racelab_lang::ir::Program;

/// How the parallel search ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// Every reachable state was expanded and none breaks an invariant. `paths` counts the
    /// transitions into a state seen before or into a finished execution, as the sequential
    /// search counts its schedules: the same number whatever the timing.
    Holds { states: u64, paths: u64 },
    /// Some execution breaks an invariant: the sequential search must find and explain it.
    Broken,
    /// The budget ran out first; `why` says which.
    OutOfBudget {
        states: u64,
        paths: u64,
        why: String,
    },
}

const SHARDS: usize = 64;

/// New states a worker counts on its own before adding them to the shared count: the state
/// budget may be overrun by this much per worker.
const STATES_BATCH: u64 = 64;

/// A value alone on its cache line.
#[repr(align(64))]
struct OwnLine<T>(T);

/// The work shared between workers, and how many are waiting for some.
struct Pool {
    work: Vec<Machine>,
    idle: usize,
    done: bool,
}

struct Shared<'a> {
    cfg: &'a EngineConfig,
    /// The program the machines run: each worker takes its own handle on a copy of it.
    prog: &'a Program,
    start: Instant,
    workers: usize,
    /// Each shard's lock on a cache line of its own: two shards on one line would make the
    /// cores take turns at it although they lock different shards.
    visited: Vec<OwnLine<Mutex<HashSet<u128, FingerprintKeys>>>>,
    /// Written by every worker at every new state: on a cache line of its own, so that the
    /// flags the workers only read (`stop`, `hungry`) are not invalidated with it.
    states: OwnLine<AtomicU64>,
    paths: AtomicU64,
    pool: Mutex<Pool>,
    wake: Condvar,
    /// Workers waiting for work: a busy worker shares only when someone waits.
    hungry: AtomicUsize,
    stop: AtomicBool,
    outcome: Mutex<Option<Proof>>,
}

impl Shared<'_> {
    /// True the first time `fingerprint` is seen.
    fn first_visit(&self, fingerprint: u128) -> bool {
        // The shard from the high half: the table indexes its buckets by the low half, which
        // would otherwise be the same few bits for every key of a shard.
        let shard = ((fingerprint >> 64) as usize) % SHARDS;
        self.visited[shard]
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fingerprint)
    }

    /// Ends the search with `outcome`, unless it has ended already.
    fn finish(&self, outcome: Proof) {
        let mut slot = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(outcome);
        }
        self.stop.store(true, Ordering::SeqCst);
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.done = true;
        self.wake.notify_all();
    }

    /// The next state to expand from the pool, waiting for one; None once the search is over.
    fn take(&self) -> Option<Machine> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if pool.done {
                return None;
            }
            if let Some(m) = pool.work.pop() {
                return Some(m);
            }
            pool.idle += 1;
            if pool.idle == self.workers {
                // Nobody has work and nobody can make more: every state is expanded.
                pool.done = true;
                drop(pool);
                let states = self.states.0.load(Ordering::SeqCst);
                let paths = self.paths.load(Ordering::SeqCst);
                let mut slot = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
                slot.get_or_insert(Proof::Holds { states, paths });
                self.wake.notify_all();
                return None;
            }
            self.hungry.fetch_add(1, Ordering::SeqCst);
            pool = self.wake.wait(pool).unwrap_or_else(|e| e.into_inner());
            self.hungry.fetch_sub(1, Ordering::SeqCst);
            pool.idle -= 1;
        }
    }

    /// Moves half of `local` to the pool when another worker waits for work: the older half,
    /// the states nearest the root, whose subtrees are the largest. Handing over the newest
    /// (deepest) ones, as before, gave away small subtrees: the other worker was soon hungry
    /// again, and every hand-over costs a detach.
    fn share(&self, local: &mut Vec<Machine>) {
        if local.len() < 2 || self.hungry.load(Ordering::Relaxed) == 0 {
            return;
        }
        let newer = local.split_off(local.len() / 2);
        let half = std::mem::replace(local, newer);
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.work.extend(half);
        self.wake.notify_all();
    }
}

/// Expands every state reachable from `initial` on `workers` threads, within `cfg`'s budget of
/// time and distinct states.
pub fn prove(initial: &Machine, cfg: &EngineConfig, start: Instant, workers: usize) -> Proof {
    if !initial.broken().is_empty() {
        return Proof::Broken;
    }
    let shared = Shared {
        cfg,
        prog: initial.program(),
        start,
        workers: workers.max(1),
        visited: (0..SHARDS).map(|_| OwnLine(Mutex::default())).collect(),
        states: OwnLine(AtomicU64::new(1)),
        paths: AtomicU64::new(0),
        pool: Mutex::new(Pool {
            work: Vec::new(),
            idle: 0,
            done: false,
        }),
        wake: Condvar::new(),
        hungry: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        outcome: Mutex::new(None),
    };
    shared.first_visit(initial.state_fingerprint());
    if !initial.is_finished() {
        shared
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .work
            .push(initial.clone());
    }
    std::thread::scope(|s| {
        for _ in 0..shared.workers {
            s.spawn(|| work(&shared));
        }
    });
    let states = shared.states.0.load(Ordering::SeqCst);
    let paths = shared.paths.load(Ordering::SeqCst);
    let outcome = shared
        .outcome
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    match outcome {
        // Counted when the budget ran out, before the other workers added their own paths.
        Some(Proof::OutOfBudget { states, why, .. }) => Proof::OutOfBudget { states, paths, why },
        Some(other) => other,
        None => Proof::Holds { states, paths },
    }
}

/// A worker's own count of finished paths, added to the shared count when it is dropped (on
/// every way out of [`work`]).
struct LocalPaths<'a> {
    shared: &'a AtomicU64,
    paths: u64,
}

impl Drop for LocalPaths<'_> {
    fn drop(&mut self) {
        self.shared.fetch_add(self.paths, Ordering::Relaxed);
    }
}

/// A worker's new states not yet in the shared count, added when there are
/// [`STATES_BATCH`] of them, and when it is dropped (every way out of [`work`]: the count is
/// read once every worker has returned).
struct LocalStates<'a> {
    shared: &'a AtomicU64,
    states: u64,
}

impl LocalStates<'_> {
    /// Counts a new state; returns the shared count when a batch was added to it.
    fn add_one(&mut self) -> Option<u64> {
        self.states += 1;
        if self.states < STATES_BATCH {
            return None;
        }
        let batch = std::mem::take(&mut self.states);
        Some(self.shared.fetch_add(batch, Ordering::Relaxed) + batch)
    }
}

impl Drop for LocalStates<'_> {
    fn drop(&mut self) {
        self.shared.fetch_add(self.states, Ordering::Relaxed);
    }
}

fn work(shared: &Shared<'_>) {
    let max_states = shared.cfg.max_states;
    let mut local: Vec<Machine> = Vec::new();
    let mut expanded = 0u32;
    // Paths are counted here and added to the shared count before this worker asks for work
    // (so before the search can end) and when it returns: an atomic add per transition on a
    // line both cores write would cost more than the count is worth.
    let mut counted = LocalPaths {
        shared: &shared.paths,
        paths: 0,
    };
    let mut new_states = LocalStates {
        shared: &shared.states.0,
        states: 0,
    };
    let prog = Arc::new(shared.prog.clone());
    // The choices of the state being expanded: one vector for them all.
    let mut choices: Vec<usize> = Vec::new();
    loop {
        let m = match local.pop() {
            Some(m) => m,
            None => {
                shared
                    .paths
                    .fetch_add(std::mem::take(&mut counted.paths), Ordering::Relaxed);
                // Before the search can end: `take` reads the count when every worker idles.
                shared
                    .states
                    .0
                    .fetch_add(std::mem::take(&mut new_states.states), Ordering::Relaxed);
                match shared.take() {
                    Some(mut m) => {
                        m.detach(&prog);
                        m
                    }
                    None => return,
                }
            }
        };
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        choices.clear();
        choices.extend(m.runnable());
        let broken_before = m.broken().len();
        // Every successor but the last steps a clone; the last takes the machine itself.
        let mut parent = Some(m);
        for (i, &c) in choices.iter().enumerate() {
            let mut next = if i + 1 == choices.len() {
                parent.take().expect("taken by the last choice only")
            } else {
                parent.as_ref().expect("kept until the last choice").clone()
            };
            next.step(c);
            if next.broken().len() > broken_before {
                shared.finish(Proof::Broken);
                return;
            }
            if !shared.first_visit(next.state_fingerprint()) {
                counted.paths += 1;
                continue;
            }
            if let Some(states) = new_states.add_one().filter(|&s| s >= max_states) {
                shared.finish(Proof::OutOfBudget {
                    states,
                    paths: shared.paths.load(Ordering::Relaxed),
                    why: super::state_budget_spent(max_states),
                });
                return;
            }
            if next.is_finished() {
                counted.paths += 1;
            } else {
                local.push(next);
            }
        }
        shared.share(&mut local);
        expanded += 1;
        if expanded.is_multiple_of(1024) && shared.start.elapsed() >= shared.cfg.budget.time {
            let states = shared.states.0.load(Ordering::Relaxed);
            shared.finish(Proof::OutOfBudget {
                states,
                paths: shared.paths.load(Ordering::Relaxed),
                why: super::time_budget_spent(shared.cfg, states),
            });
            return;
        }
    }
}
