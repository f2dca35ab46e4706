//! Exploring a real program's interleavings through the gate: random and PCT schedules over its
//! gated calls, faults landed like any other choice, failures shrunk and replayed.
//!
//! Every execution starts real processes, so budgets are in executions and seconds, counted
//! in tens or hundreds rather than the model's millions.

use std::time::{Duration, Instant};

use super::run::{execute, Chooser, Execution, GateEnd, GateOptions};
use super::tracee::GateError;
use racelab_core::rng::Rng;
use racelab_core::schedule::{Schedule, TokenError};
use racelab_lang::ir::Program;

/// The schedule-picking strategies the gate offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Random,
    /// Probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010): random actor
    /// priorities, `depth - 1` priority drops at random steps; faults land at random steps.
    Pct {
        depth: usize,
    },
}

impl Strategy {
    pub fn engine_name(self) -> &'static str {
        match self {
            Strategy::Random => "gate-random",
            Strategy::Pct { .. } => "gate-pct",
        }
    }
}

/// A random walk that keeps running one process and preempts it mostly where it matters:
/// after a step that changed a file others see, it switches to another ready process one time
/// in two; after any other step, one time in four. (Uniform choices at every step would split
/// every read-decide-write sequence of a real program, whose calls are many, and almost never
/// let one process run a whole decision while another waits right after its write.) A fault,
/// when one may land, lands one time in `fault_odds`.
struct RandomChooser {
    rng: Rng,
    actors: usize,
    fault_odds: usize,
}

impl Chooser for RandomChooser {
    fn choose(
        &mut self,
        _step: usize,
        enabled: &[u8],
        last: Option<(usize, bool)>,
    ) -> Result<Option<u8>, String> {
        let (actors, faults): (Vec<u8>, Vec<u8>) =
            enabled.iter().partition(|&&c| (c as usize) < self.actors);
        if !faults.is_empty() && (actors.is_empty() || self.rng.below(self.fault_odds) == 0) {
            return Ok(Some(faults[self.rng.below(faults.len())]));
        }
        if let Some((prev, changed)) = last {
            let others: Vec<u8> = actors
                .iter()
                .copied()
                .filter(|&a| a as usize != prev)
                .collect();
            if actors.contains(&(prev as u8)) {
                let switch = !others.is_empty() && self.rng.below(if changed { 2 } else { 4 }) == 0;
                return Ok(Some(if switch {
                    others[self.rng.below(others.len())]
                } else {
                    prev as u8
                }));
            }
        }
        Ok(Some(actors[self.rng.below(actors.len())]))
    }

    fn choose_thread(
        &mut self,
        _step: usize,
        _actor: usize,
        ready: usize,
    ) -> Result<Option<u8>, String> {
        Ok(Some(self.rng.below(ready) as u8))
    }
}

struct PctChooser {
    actors: usize,
    priority: Vec<usize>,
    change_points: Vec<usize>,
    fault_points: Vec<usize>,
    rng: Rng,
}

impl PctChooser {
    fn new(
        actors: usize,
        faults: usize,
        depth: usize,
        expected_steps: usize,
        mut rng: Rng,
    ) -> PctChooser {
        // Distinct random priorities, all above the ones handed out at change points.
        let mut priority: Vec<usize> = (depth..depth + actors).collect();
        for i in (1..priority.len()).rev() {
            let j = rng.below(i + 1);
            priority.swap(i, j);
        }
        let change_points = (1..depth).map(|_| rng.below(expected_steps)).collect();
        let fault_points = (0..faults).map(|_| rng.below(expected_steps)).collect();
        PctChooser {
            actors,
            priority,
            change_points,
            fault_points,
            rng,
        }
    }
}

impl Chooser for PctChooser {
    fn choose(
        &mut self,
        step: usize,
        enabled: &[u8],
        _last: Option<(usize, bool)>,
    ) -> Result<Option<u8>, String> {
        let faults: Vec<u8> = enabled
            .iter()
            .copied()
            .filter(|&c| c as usize >= self.actors)
            .collect();
        if let Some(&f) = faults.iter().find(|&&f| {
            self.fault_points
                .get(f as usize - self.actors)
                .is_some_and(|&p| p <= step)
        }) {
            return Ok(Some(f));
        }
        loop {
            let Some(&best) = enabled
                .iter()
                .filter(|&&c| (c as usize) < self.actors)
                .max_by_key(|&&c| self.priority[c as usize])
            else {
                return Ok(faults.first().copied());
            };
            // At a change point the highest-priority actor drops below every other.
            match self.change_points.iter().position(|&p| p == step) {
                Some(k) => {
                    self.priority[best as usize] = k;
                    self.change_points[k] = usize::MAX;
                    let _ = self.rng.next();
                }
                None => return Ok(Some(best)),
            }
        }
    }

    fn choose_thread(
        &mut self,
        _step: usize,
        _actor: usize,
        ready: usize,
    ) -> Result<Option<u8>, String> {
        Ok(Some(self.rng.below(ready) as u8))
    }
}

/// Follows a recorded schedule, then stops.
pub struct Follow<'a> {
    pub steps: &'a [u8],
}

impl Chooser for Follow<'_> {
    fn choose(
        &mut self,
        step: usize,
        enabled: &[u8],
        _last: Option<(usize, bool)>,
    ) -> Result<Option<u8>, String> {
        match self.steps.get(step) {
            None => Ok(None),
            Some(c) if enabled.contains(c) => Ok(Some(*c)),
            Some(c) => Err(format!("the schedule diverged at step {}: it chooses #{c}, but only {enabled:?} can go (is the program deterministic given its schedule?)", step + 1)),
        }
    }

    fn choose_thread(
        &mut self,
        step: usize,
        actor: usize,
        ready: usize,
    ) -> Result<Option<u8>, String> {
        match self.steps.get(step) {
            None => Ok(None),
            Some(&k) if (k as usize) < ready => Ok(Some(k)),
            Some(k) => Err(format!("the schedule diverged at step {}: it chooses thread {k} of #{actor}, but only {ready} of its threads are at gated calls (is the program deterministic given its schedule?)", step + 1)),
        }
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
    };
    // PCT draws its change points over the steps a run makes: a guess until one run has
    // finished, then the longest seen (a short program's races sit in its first few steps,
    // which a guess of 200 would rarely hit).
    let mut expected_steps = 200;
    let mut seen_finished = false;
    let mut opts = opts.clone();
    while out.executions < max_executions && started.elapsed() < max_time {
        let mut rng = Rng(seed ^ out.executions.wrapping_mul(0xA24B_AED4_963E_E407));
        // Each execution draws the programs' random numbers afresh, as each real run would.
        opts.seed = rng.next() >> 1;
        let opts = &opts;
        let exec = match strategy {
            Strategy::Random => execute(
                prog,
                opts,
                &mut RandomChooser {
                    rng,
                    actors: prog.actors.len(),
                    fault_odds: 16,
                },
            )?,
            Strategy::Pct { depth } => execute(
                prog,
                opts,
                &mut PctChooser::new(
                    prog.actors.len(),
                    prog.faults.len(),
                    depth,
                    expected_steps,
                    rng,
                ),
            )?,
        };
        out.executions += 1;
        if exec.end == GateEnd::Finished {
            expected_steps = if seen_finished {
                expected_steps.max(exec.choices.len())
            } else {
                exec.choices.len().max(1)
            };
            seen_finished = true;
        }
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
    execute(
        prog,
        &opts,
        &mut Follow {
            steps: &sched.steps,
        },
    )
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
