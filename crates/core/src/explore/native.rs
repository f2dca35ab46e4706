//! racelab's own engines: the machine stepped directly, no threads, and a stateful search.
//!
//! loom and shuttle run every actor as a thread (or coroutine) and learn only what a step did to
//! their own bookkeeping. The [`Machine`] is already explicit state (frames, program counters,
//! the world, the clock), so an engine can step it as a value: clone it, step a choice, look at
//! the result. That is all three engines here:
//!
//! - `native-random`: at each step, a uniformly random runnable choice (an actor, or a fault):
//!   the shared [`Random`] chooser.
//! - `native-pct`: probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010): random
//!   distinct priorities, `depth - 1` priority change points at random steps, and always the
//!   highest-priority runnable choice: the shared [`Pct`] chooser.
//! - `native-dfs`: depth-first search over the whole state space, expanding every distinct
//!   state once (a 128-bit fingerprint of [`Machine::state_fingerprint`] in a visited set). When
//!   it finishes within its budget, `holds` is a proof over every reachable state, not only
//!   within a preemption bound.
//!
//! Every engine records the machine's own schedule (the choice of each step), so a finding is
//! the same portable token that loom, shuttle and every real backend replay.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::chooser::{Chooser, Pct, Random};
use super::collect::{Collector, Exploration};
use super::{state_budget_spent, time_budget_spent, EngineConfig, EngineKind};
use crate::model::fingerprint::FingerprintKeys;
use crate::model::Machine;
use racelab_lang::ir::Program;

/// Explores `prog` with one of the native engines.
pub fn explore(prog: &Arc<Program>, cfg: &EngineConfig) -> Exploration {
    let start = Instant::now();
    let initial = Machine::new(Arc::clone(prog));
    let mut col = Collector::new(Arc::clone(prog));
    let mut covered = None;
    let (exhaustive, states, note, paths) = match cfg.kind {
        EngineKind::NativeDfs => {
            let s = parallel_proof(&initial, cfg, start)
                .unwrap_or_else(|| dfs(&initial, cfg, &mut col, start));
            covered = s.covered;
            (s.complete, Some(s.states), s.note, s.paths)
        }
        EngineKind::NativePct => {
            let mut pct = Pct::new(cfg.seed, cfg.pct_depth, initial.choice_count());
            run_chooser(&initial, cfg, &mut col, start, &mut pct);
            (false, None, None, col.executions)
        }
        _ => {
            run_chooser(&initial, cfg, &mut col, start, &mut Random::new(cfg.seed));
            (false, None, None, col.executions)
        }
    };
    let mut bound = cfg.describe_bound();
    if let Some(n) = note {
        bound = format!("{bound}; {n}");
    }
    Exploration {
        engine: cfg.kind.name(),
        schedules: paths,
        seconds: start.elapsed().as_secs_f64(),
        exhaustive,
        findings: col.findings,
        bound,
        states,
        covered,
    }
}

fn out_of_budget(cfg: &EngineConfig, col: &Collector, start: Instant) -> bool {
    col.stop || col.executions >= cfg.budget.schedules.max(1) || start.elapsed() >= cfg.budget.time
}

/// native-random and native-pct: executions from `initial`, each step as `chooser` says,
/// until the budget is spent, the verdict settled, or the chooser has no more.
fn run_chooser<C: Chooser>(
    initial: &Machine,
    cfg: &EngineConfig,
    col: &mut Collector,
    start: Instant,
    chooser: &mut C,
) {
    let mut runnable = Vec::new();
    // One machine, restarted from `initial` for each execution: it keeps its buffers.
    let mut m = initial.clone();
    let mut first = true;
    while !out_of_budget(cfg, col, start) && chooser.new_execution() {
        if !std::mem::take(&mut first) {
            m.restart_from(initial);
        }
        while !m.is_finished() {
            m.runnable_into(&mut runnable);
            if runnable.is_empty() {
                break;
            }
            let Some(c) = chooser.next_choice(&runnable, None) else {
                break;
            };
            m.step(c);
        }
        chooser.end_execution();
        col.absorb(&m);
    }
}

/// What a stateful search covered.
struct Searched {
    states: u64,
    /// Paths of the search tree: each ends at a finished execution or at a state expanded
    /// before (whose futures were all explored from there).
    paths: u64,
    /// The complete schedules the search covered, counted over the state graph (a state's
    /// count is the sum of its successors'; a finished execution counts one). None when the
    /// graph has a cycle (a spin loop without time passing), whose schedules are unbounded.
    covered: Option<u128>,
    /// The whole state space was expanded: no budget ran out.
    complete: bool,
    note: Option<String>,
}

/// The parallel proof search's verdict when it settles one (`parallel.rs`): every state
/// expanded and none broke, or the budget spent. None when something broke (or the search is
/// configured sequential): then the sequential search finds the deterministic counterexample.
fn parallel_proof(initial: &Machine, cfg: &EngineConfig, start: Instant) -> Option<Searched> {
    if cfg.workers < 2 || cfg.por {
        return None;
    }
    let workers = cfg.workers;
    match super::parallel::prove(initial, cfg, start, workers) {
        super::parallel::Proof::Holds { states, paths } => Some(Searched {
            states,
            paths,
            covered: None,
            complete: true,
            note: Some(format!(
                "exhaustive over the whole state space: {states} distinct states (searched on {workers} threads)"
            )),
        }),
        super::parallel::Proof::OutOfBudget { states, paths, why } => Some(Searched {
            states,
            paths,
            covered: None,
            complete: false,
            note: Some(why),
        }),
        super::parallel::Proof::Broken => None,
    }
}

/// The default bound on distinct states: 32 bytes each in the visited map (fingerprint and
/// schedule count), so about 150 MB at most with the map's control bytes and slack.
pub const DEFAULT_MAX_STATES: u64 = 4_000_000;

/// A state being expanded: the machine, the choices not yet tried, the schedules counted so
/// far below it, and for partial-order reduction its sleep set and the choices already taken.
/// The last child takes the machine instead of a clone of it (a clone per successor was a
/// third of the search's time), so `machine` is None once every choice has been taken.
struct Frame {
    machine: Option<Machine>,
    fingerprint: u128,
    choices: Vec<usize>,
    below: u128,
    sleep: Vec<usize>,
    done: Vec<usize>,
}

impl Frame {
    /// `choices` is an empty vector to fill (one a finished frame gave back, so that the search
    /// allocates none per state).
    fn new(
        machine: Machine,
        fingerprint: u128,
        sleep: Vec<usize>,
        mut choices: Vec<usize>,
    ) -> Frame {
        choices.extend(machine.runnable().filter(|c| !sleep.contains(c)));
        Frame {
            machine: Some(machine),
            fingerprint,
            choices,
            below: 0,
            sleep,
            done: Vec::new(),
        }
    }
}

/// The count of a state still on the search stack: reaching it again is a cycle.
const ON_STACK: u128 = u128::MAX;

/// True when the next steps of choices `a` and `b` in `m` touch disjoint resources.
fn independent(m: &Machine, a: usize, b: usize) -> bool {
    match (m.footprint(a), m.footprint(b)) {
        (Some(x), Some(y)) => x.iter().all(|r| !y.contains(r)),
        _ => false,
    }
}

/// What the search remembers of each state: the schedules below it (once expanded; `ON_STACK`
/// while it is on the stack), keyed by fingerprint. 32 bytes a state plus the table's control
/// byte and slack; the fingerprints are hashes already, so the table does not hash them again.
type Seen = HashMap<u128, u128, FingerprintKeys>;

/// With partial-order reduction only: the sleep set each state was expanded with. Kept apart
/// so that the usual search does not pay 24 bytes a state for an empty `Vec`.
type Sleeps = HashMap<u128, Vec<usize>, FingerprintKeys>;

/// Depth-first search that expands each distinct state once.
///
/// Soundness for safety properties: the future of a state depends only on the state (the
/// machine is deterministic given a choice), and the fingerprint covers everything the machine
/// reads, including which invariants already broke. So every invariant break reachable from a
/// pruned state is also reachable from the state's first visit, and reported from there. A
/// state reached again on the current path is a cycle (a spin loop); pruning it cuts the
/// cycle, which loses no safety violation but means the step bound (livelock) is never hit.
///
/// With `cfg.por`, sleep sets (Godefroid) skip transitions that commute with one already
/// explored: after exploring choice `t` from a state, a sibling `c` independent of `t` (their
/// footprints are disjoint, [`Machine::footprint`]) need not explore `t` again right after `c`,
/// since `c;t` reaches the state `t;c` did. Sleep sets alone never skip a state, only
/// transitions, so every state is still checked against the invariants. Combined with the
/// visited set: a state reached again with a sleep set that is not a superset of the one it
/// was expanded with is expanded again with their intersection. Re-expansions make the
/// schedule count meaningless, so it is only given without POR.
fn dfs(initial: &Machine, cfg: &EngineConfig, col: &mut Collector, start: Instant) -> Searched {
    let max_states = cfg.max_states;
    let mut seen = Seen::default();
    let mut sleeps = Sleeps::default();
    let root = initial.state_fingerprint();
    seen.insert(root, ON_STACK);
    let mut stack = vec![Frame::new(initial.clone(), root, Vec::new(), Vec::new())];
    // The choice vectors of finished frames, for new frames to reuse.
    let mut spare_choices: Vec<Vec<usize>> = Vec::new();
    if initial.is_finished() {
        col.absorb(initial);
        stack[0].below = 1;
    }
    let mut note = None;
    let mut checked = 0u32;
    let mut paths = 0u64;
    let mut cyclic = false;
    let mut covered = None;
    let mut skipped = 0u64;
    while let Some(top) = stack.last_mut() {
        let Some(c) = top.choices.pop() else {
            let done = stack.pop().expect("the loop saw a top frame");
            if let Some(below) = seen.get_mut(&done.fingerprint) {
                *below = done.below;
            }
            spare_choices.push(done.choices);
            match stack.last_mut() {
                Some(parent) => parent.below = parent.below.saturating_add(done.below),
                None => covered = Some(done.below),
            }
            continue;
        };
        let parent = top
            .machine
            .as_ref()
            .expect("a frame keeps its machine until its last choice");
        // The child's sleep set: what this state sleeps on or has explored, that commutes with c.
        let child_sleep: Vec<usize> = if cfg.por {
            top.sleep
                .iter()
                .chain(top.done.iter())
                .copied()
                .filter(|&t| t != c && independent(parent, t, c))
                .collect()
        } else {
            Vec::new()
        };
        if cfg.por {
            skipped += parent
                .runnable()
                .filter(|t| child_sleep.contains(t))
                .count() as u64;
            top.done.push(c);
        }
        let broken_before = parent.broken().len();
        let mut next = if top.choices.is_empty() {
            top.machine
                .take()
                .expect("the machine is taken by the last choice only")
        } else {
            parent.clone()
        };
        next.step(c);
        let fingerprint = next.state_fingerprint();
        let mut revisit = None;
        // One probe of the table for a new state (it is marked on the stack at once; a finished
        // one is given its count below), two for a state seen before.
        let seen_before = match seen.entry(fingerprint) {
            Entry::Occupied(entry) => Some(*entry.get()),
            Entry::Vacant(entry) => {
                entry.insert(ON_STACK);
                None
            }
        };
        if let Some(below) = seen_before {
            if below == ON_STACK {
                cyclic = true;
                paths += 1;
                continue;
            }
            let slept = sleeps.get_mut(&fingerprint);
            let covers = |s: &Vec<usize>| s.iter().all(|t| child_sleep.contains(t));
            match slept {
                Some(sleep) if cfg.por && !covers(sleep) => {
                    // Reached with a smaller sleep set than it was expanded with: expand it
                    // again with the intersection, so nothing it slept on goes unexplored.
                    sleep.retain(|t| child_sleep.contains(t));
                    revisit = Some(sleep.clone());
                }
                _ => {
                    paths += 1;
                    top.below = top.below.saturating_add(below);
                    continue;
                }
            }
        }
        let broke = next.broken().len() > broken_before;
        if (broke || next.is_finished()) && revisit.is_none() {
            // A finished execution is a path; so is the schedule up to a break (the finding's
            // token), also when the search stops there.
            paths += 1;
            col.absorb(&next);
            if col.stop {
                if seen_before.is_none() {
                    // Counted as a state only once expanded, as before the one-probe lookup.
                    seen.remove(&fingerprint);
                }
                note = Some("stopped once the verdict was settled".to_string());
                break;
            }
        }
        if next.is_finished() {
            if seen_before.is_none() {
                seen.insert(fingerprint, 1);
            }
            top.below = top.below.saturating_add(1);
        } else {
            let sleep = revisit.unwrap_or(child_sleep);
            if seen_before.is_some() {
                // A revisit under partial-order reduction: on the stack again.
                seen.insert(fingerprint, ON_STACK);
            }
            if cfg.por {
                sleeps.insert(fingerprint, sleep.clone());
            }
            let choices = spare_choices.pop().unwrap_or_default();
            stack.push(Frame::new(next, fingerprint, sleep, choices));
        }
        if seen.len() as u64 >= max_states {
            note = Some(state_budget_spent(max_states));
            break;
        }
        // The clock is read only now and then: it costs more than a step.
        checked += 1;
        if checked.is_multiple_of(1024) && start.elapsed() >= cfg.budget.time {
            note = Some(time_budget_spent(cfg, seen.len() as u64));
            break;
        }
    }
    let complete = note.is_none();
    let covered = covered.filter(|_| complete && !cyclic && !cfg.por);
    if complete {
        let por = if cfg.por {
            format!("; partial-order reduction skipped {skipped} commuting transitions")
        } else {
            String::new()
        };
        note = Some(match covered {
            Some(n) => format!("exhaustive over the whole state space: {} distinct states, covering {n} complete schedules{por}", seen.len()),
            None => format!("exhaustive over the whole state space: {} distinct states{por}", seen.len()),
        });
    }
    Searched {
        states: seen.len() as u64,
        paths,
        covered,
        complete,
        note,
    }
}
