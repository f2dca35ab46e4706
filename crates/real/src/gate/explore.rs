//! Exploring a real program's interleavings through the gate: random, PCT and depth-first
//! schedules over its gated calls (the engines' shared choosers, `racelab_core::explore::chooser`),
//! faults landed like any other choice, failures shrunk and replayed.
//!
//! Every execution starts real processes, so budgets are in executions and seconds, counted
//! in tens or hundreds rather than the model's millions.

use std::time::{Duration, Instant};

use super::run::{execute, Chooser, Execution, GateOptions};
use super::tracee::GateError;
use racelab_core::explore::chooser::{Dfs, Divergence, Pct, Replay, Walk};
use racelab_core::schedule::{Schedule, TokenError};
use racelab_lang::ir::Program;

/// The schedule-picking strategies the gate offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The shared [`Walk`]: a random walk that preempts a process mostly after a step others
    /// see; a fault lands one time in 16.
    Random,
    /// The shared [`Pct`], native-pct's: random priorities over the actors and faults,
    /// `depth - 1` priority drops at random steps.
    Pct { depth: usize },
    /// The shared [`Dfs`]: every schedule, depth first, until there is none left or the
    /// budget is spent; every execution gets the same random bytes.
    Dfs,
}

impl Strategy {
    pub fn engine_name(self) -> &'static str {
        match self {
            Strategy::Random => "gate-random",
            Strategy::Pct { .. } => "gate-pct",
            Strategy::Dfs => "gate-dfs",
        }
    }

    /// The strategy's chooser for a whole exploration of `prog`.
    fn chooser(self, prog: &Program, seed: u64) -> Box<dyn Chooser> {
        let actors = prog.actors.len();
        match self {
            Strategy::Random => Box::new(Walk::new(seed, actors, 16)),
            Strategy::Pct { depth } => Box::new(Pct::new(seed, depth, actors + prog.faults.len())),
            Strategy::Dfs => Box::new(Dfs::new(seed)),
        }
    }
}

/// The message of a gated replay whose schedule the program did not follow. The NFS part
/// (`xtask/src/nfs/suite/guest.rs`) retries a replay whose output says "the schedule diverged".
fn diverged(d: &Divergence) -> String {
    match d {
        Divergence::Choice { step, wanted, runnable } => format!("the schedule diverged at step {}: it chooses #{wanted}, but only {runnable:?} can go (is the program deterministic given its schedule?)", step + 1),
        Divergence::Thread { step, wanted, actor, ready } => format!("the schedule diverged at step {}: it chooses thread {wanted} of #{actor}, but only {ready} of its threads are at gated calls (is the program deterministic given its schedule?)", step + 1),
    }
}

/// A gate token is refused by the model and a model token by the gate: their steps are
/// different things (calls of the real program, operations of the model).
pub fn gate_fingerprint(prog: &Program) -> u32 {
    racelab_core::lang::fnv32(
        prog.fingerprint,
        format!("gate:{}", prog.gate.as_deref().unwrap_or("")).as_bytes(),
    )
}

/// The names under which a gate schedule carries its seed and tick among the parameters.
const SEED_PARAM: &str = "gate.seed";
const TICK_PARAM: &str = "gate.tick_ms";

/// A portable schedule of a gated run: the choices, plus what else the run depended on.
pub fn gate_schedule(
    prog: &Program,
    opts: &GateOptions,
    target: Option<String>,
    steps: Vec<u8>,
) -> Schedule {
    let mut s = Schedule {
        fingerprint: gate_fingerprint(prog),
        ..Schedule::of(prog, target, steps)
    };
    s.params.push((SEED_PARAM.into(), opts.seed as i64));
    s.params
        .push((TICK_PARAM.into(), (opts.tick_ns / 1_000_000) as i64));
    s
}

/// How long a gated exploration may go on: real executions, and seconds of wall time.
#[derive(Debug, Clone, Copy)]
pub struct GateBudget {
    pub executions: u64,
    pub seconds: f64,
}

/// The result of exploring one variant through the gate.
#[derive(Debug)]
pub struct GateExploration {
    pub executions: u64,
    pub seconds: f64,
    /// Per invariant broken: the first execution that broke it and how many had run by then.
    pub findings: Vec<GateFinding>,
    /// Every schedule was run (gate-dfs, when its search ended within the budget).
    pub exhaustive: bool,
}

#[derive(Debug, Clone)]
pub struct GateFinding {
    pub invariant: String,
    pub message: String,
    pub original: Schedule,
    pub shrunk: Schedule,
    pub after: u64,
    /// The execution of `shrunk` (of `original` until shrinking replaces it).
    pub execution: Execution,
    /// Process switches in `original` ([`Execution::process_switches`]).
    pub original_switches: u32,
}

impl GateFinding {
    /// Process switches in `shrunk`: a thread choice is none.
    pub fn shrunk_switches(&self) -> u32 {
        self.execution.process_switches(self.shrunk.steps.len())
    }
}

/// Explores until every invariant the expectation names has broken, or the budget is spent.
pub fn explore(
    prog: &Program,
    opts: &GateOptions,
    strategy: Strategy,
    budget: GateBudget,
    want: &[String],
    seed: u64,
    progress: &mut dyn FnMut(u64, usize),
) -> Result<GateExploration, GateError> {
    let (max_executions, max_time) = (budget.executions, Duration::from_secs_f64(budget.seconds));
    let started = Instant::now();
    let mut out = GateExploration {
        executions: 0,
        seconds: 0.0,
        findings: Vec::new(),
        exhaustive: false,
    };
    let mut chooser = strategy.chooser(prog, seed);
    let mut opts = opts.clone();
    while out.executions < max_executions && started.elapsed() < max_time {
        if !chooser.new_execution() {
            out.exhaustive = true;
            break;
        }
        // Each execution draws the programs' random numbers afresh, as each real run would
        // (gate-dfs gives each the same ones: its executions must differ by schedule only).
        opts.seed = chooser.next_u64() >> 1;
        let opts = &opts;
        let exec = execute(prog, opts, &mut *chooser)?;
        chooser.end_execution();
        out.executions += 1;
        for b in &exec.broken {
            if out.findings.iter().any(|f| f.invariant == b.invariant) {
                continue;
            }
            let sched = gate_schedule(
                prog,
                opts,
                Some(b.invariant.clone()),
                exec.choices[..b.steps].to_vec(),
            );
            out.findings.push(GateFinding {
                invariant: b.invariant.clone(),
                message: b.message.clone(),
                shrunk: sched.clone(),
                original: sched,
                after: out.executions,
                original_switches: exec.process_switches(b.steps),
                execution: exec.clone(),
            });
        }
        progress(out.executions, out.findings.len());
        if !want.is_empty()
            && want
                .iter()
                .all(|w| out.findings.iter().any(|f| f.invariant == *w))
        {
            break;
        }
    }
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

/// Replays `sched` through the gate. The token must be a gate token for this variant.
pub fn replay(
    prog: &Program,
    opts: &GateOptions,
    sched: &Schedule,
) -> Result<Execution, GateError> {
    if sched.scenario != prog.scenario || sched.variant != prog.variant {
        return Err(TokenError::WrongScenario {
            token_scenario: sched.scenario.clone(),
            token_variant: sched.variant.clone(),
            scenario: prog.scenario.clone(),
            variant: prog.variant.clone(),
        }
        .into());
    }
    if sched.fingerprint == prog.fingerprint {
        return Err(racelab_core::error::Error::new(racelab_core::error::ErrorKind::Token, "this token was recorded on the model, whose steps are the scenario's operations; a gated run's steps are the real program's calls. Replay it with `--backend model` (or a real fs backend), or explore with `--backend gate` for a gate token"));
    }
    if sched.fingerprint != gate_fingerprint(prog) {
        return Err(TokenError::Stale {
            scenario: prog.scenario.clone(),
            variant: prog.variant.clone(),
        }
        .into());
    }
    let mut opts = opts.clone();
    for (name, value) in &sched.params {
        match name.as_str() {
            SEED_PARAM => opts.seed = *value as u64,
            TICK_PARAM => opts.tick_ns = *value as u64 * 1_000_000,
            _ => {}
        }
    }
    let mut follow = Replay::new(&sched.steps);
    follow.new_execution();
    let exec = execute(prog, &opts, &mut follow)?;
    match follow.divergence() {
        Some(d) => Err(diverged(d).into()),
        None => Ok(exec),
    }
}

/// Shrinks a finding by replaying candidates through the gate: at most `max_attempts` real
/// executions.
pub fn shrink(prog: &Program, opts: &GateOptions, finding: &mut GateFinding, max_attempts: usize) {
    let target = finding.invariant.clone();
    let original = finding.original.clone();
    let mut reproduces = |candidate: &[u8]| -> Option<Vec<u8>> {
        let exec = replay(
            prog,
            opts,
            &Schedule {
                steps: candidate.to_vec(),
                ..original.clone()
            },
        )
        .ok()?;
        let b = exec.broken.iter().find(|b| b.invariant == target)?;
        Some(exec.choices[..b.steps].to_vec())
    };
    let steps = racelab_core::shrink::shrink_steps(
        prog.actors.len(),
        &finding.original.steps,
        max_attempts,
        &mut reproduces,
    );
    if let Ok(exec) = replay(
        prog,
        opts,
        &Schedule {
            steps: steps.clone(),
            ..original.clone()
        },
    ) {
        if exec.broke(&target) {
            finding.shrunk = Schedule {
                steps: exec.choices.clone(),
                ..finding.original.clone()
            };
            finding.execution = exec;
        }
    }
}
