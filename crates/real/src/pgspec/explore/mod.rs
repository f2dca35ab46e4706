//! Beyond isolationtester: the interleavings a spec does not list, run through the same
//! blocked-step detection, and the outcomes no listed permutation produced, reported as
//! findings with replay tokens.
//!
//! **Which interleavings.** A listed permutation fixes each session's *program* (the steps it
//! runs, in order: its projection on the session) and one order of them. The unlisted
//! interleavings of a spec are every other order of the same programs: for each distinct set of
//! per-session programs among the listed permutations, every merge of them that keeps each
//! session's order and is not itself listed. A spec that lists no permutation already runs every
//! interleaving, so it has none left. When there are more than the budget, a seeded random
//! sample of them runs (each drawn uniformly among a program set's interleavings, program sets
//! in turn).
//!
//! **Outcome.** What a run changed and what failed, not what its reads saw (a read depends on
//! its position by design): the set of (step, SQLSTATE) of the errors its steps raised
//! (deadlocks 40P01, serialization failures 40001, NOWAIT's 55P03, unique violations 23505, …),
//! and the rows of every table at the end, read once each session's still-open transaction has
//! been rolled back. A run where a step waited on a session with no step before it (it could
//! only end by the step timeout) is *stalled*: the step is cancelled at once, as isolationtester
//! would after its timeout, and the run is counted apart, never compared. A run whose step timed
//! out or that failed is counted apart too, with why.
//!
//! **Findings.** An unlisted interleaving whose outcome equals no listed permutation's, and
//! that gives the same outcome when run a second time (a server's timing can vary), is a
//! finding: one per distinct new outcome, with the first interleaving that gave it and its
//! token. `racelab isolation SPEC --replay TOKEN` runs it again and prints isolationtester's
//! output and the outcome.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::parse::{PermStep, Spec};
use super::run::{run_recorded, Link, Recorded, Watch};

mod outcome;
mod plan;
mod token;

pub use self::outcome::{classify, Class, Outcome};
pub use self::plan::{plan, Plan};
pub use self::token::{decode, token};

/// The `variant` of an isolation spec's tokens (a scenario's tokens name a scenario variant).
pub const TOKEN_VARIANT: &str = "pg-isolation";
/// A new outcome of an unlisted interleaving.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The first interleaving that produced it, as step names.
    pub interleaving: String,
    pub outcome: Outcome,
    /// How it differs from the closest listed permutation's outcome, and that permutation.
    pub differences: Vec<String>,
    pub closest: String,
    /// Unlisted interleavings that produced it.
    pub count: usize,
    /// Its place among the unlisted interleavings run (from 1), and its context switches.
    pub after: u64,
    pub switches: u32,
    pub token: String,
}

/// A spec's exploration.
#[derive(Debug, Clone, Default)]
pub struct Exploration {
    pub spec: String,
    pub listed: usize,
    /// Distinct outcomes among the listed permutations.
    pub listed_outcomes: usize,
    pub unlisted_total: u64,
    pub exhaustive: bool,
    /// Unlisted interleavings run.
    pub ran: usize,
    pub seen: usize,
    pub stalled: usize,
    pub timed_out: usize,
    /// Runs that failed, with why (the first few).
    pub failed: Vec<String>,
    pub failed_count: usize,
    pub findings: Vec<Finding>,
    /// New outcomes a second run did not give again.
    pub unconfirmed: usize,
    /// A run failed or its teardown did: the database may hold objects the spec left.
    pub dirty: bool,
    /// Per unlisted interleaving run (by its step names): its outcome, or how it ended
    /// without one (`stalled`, `timed out`, `failed`), for comparing backends.
    pub outcomes: Vec<(String, Result<Outcome, &'static str>)>,
    pub seconds: f64,
}

impl Exploration {
    /// One line of figures.
    pub fn describe(&self) -> String {
        if self.listed == 0 {
            return "lists no permutation: every interleaving is already run".into();
        }
        format!(
            "{} of {} unlisted interleavings run{} ({} listed permutations, {} distinct outcomes): {} new outcome{}{}; {} gave a listed outcome, {} stalled, {} timed out, {} failed",
            self.ran,
            self.unlisted_total,
            if self.exhaustive { " (every one)" } else { " (seeded sample)" },
            self.listed,
            self.listed_outcomes,
            self.findings.len(),
            if self.findings.len() == 1 { "" } else { "s" },
            if self.unconfirmed > 0 {
                format!(" (+{} not reproduced by a second run)", self.unconfirmed)
            } else {
                String::new()
            },
            self.seen,
            self.stalled,
            self.timed_out,
            self.failed_count
        )
    }
}

/// Connections to run a spec's permutations on, and the clean-up after a run that failed
/// (its connections are dropped; what it left behind must go before the next setup).
pub trait Connector {
    type L: Link;
    type W: Watch;
    fn connect(&mut self) -> Result<(Self::W, Vec<Self::L>), String>;
    fn clean_up(&mut self) -> Result<(), String>;
}

/// Runs `perms`, each on fresh connections (so that session state — a temporary table made
/// by a session's setup, a setting — does not carry over, whatever order they run in),
/// cleaning up after a run that failed.
pub fn run_all<C: Connector>(
    c: &mut C,
    spec: &Spec,
    perms: &[Vec<PermStep>],
    step_wait: Duration,
) -> Result<Vec<Recorded>, String> {
    let mut out: Vec<Recorded> = Vec::new();
    for perm in perms {
        let (control, conns) = c.connect()?;
        let rec = run_recorded(spec, control, conns, std::slice::from_ref(perm), step_wait)
            .pop()
            .ok_or("no permutation ran")?;
        let failed = rec.fatal.is_some();
        out.push(rec);
        if failed {
            c.clean_up()?;
        }
    }
    Ok(out)
}

/// The step names of a permutation, space-separated.
pub fn names(spec: &Spec, perm: &[PermStep]) -> String {
    perm.iter()
        .map(|p| spec.step(p).name.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Explores `spec`'s unlisted interleavings (see the module's documentation).
pub fn explore<C: Connector>(
    c: &mut C,
    name: &str,
    source: &str,
    spec: &Spec,
    budget: usize,
    seed: u64,
    step_wait: Duration,
) -> Result<Exploration, String> {
    let started = Instant::now();
    let plan = plan(spec, budget, seed);
    let mut ex = Exploration {
        spec: name.to_string(),
        listed: plan.listed.len(),
        unlisted_total: plan.unlisted_total,
        exhaustive: plan.exhaustive,
        ..Exploration::default()
    };
    if plan.listed.is_empty() || plan.unlisted.is_empty() {
        ex.seconds = started.elapsed().as_secs_f64();
        return Ok(ex);
    }
    let listed_runs = run_all(c, spec, &plan.listed, step_wait)?;
    let listed: Vec<(String, Outcome)> = plan
        .listed
        .iter()
        .zip(&listed_runs)
        .map(|(p, r)| (names(spec, p), Outcome::of(&r.trace)))
        .collect();
    let listed_set: BTreeSet<Outcome> = listed.iter().map(|(_, o)| o.clone()).collect();
    ex.listed_outcomes = listed_set.len();
    let runs = run_all(c, spec, &plan.unlisted, step_wait)?;
    ex.ran = runs.len();
    ex.dirty = listed_runs
        .iter()
        .chain(&runs)
        .any(|r| r.fatal.is_some() || r.output.contains("teardown failed:"));
    let mut new: BTreeMap<Outcome, (usize, usize)> = BTreeMap::new(); // outcome -> (first, count)
    for (i, (perm, rec)) in plan.unlisted.iter().zip(&runs).enumerate() {
        let class = classify(rec, &listed_set);
        match &class {
            Class::Seen => ex.seen += 1,
            Class::Stalled(_) => ex.stalled += 1,
            Class::TimedOut(_) => ex.timed_out += 1,
            Class::Failed(e) => {
                ex.failed_count += 1;
                if ex.failed.len() < 3 {
                    ex.failed.push(format!("{}: {e}", names(spec, perm)));
                }
            }
            Class::New(o) => new.entry(o.clone()).or_insert((i, 0)).1 += 1,
        }
        let outcome = match class {
            Class::Seen | Class::New(_) => Ok(Outcome::of(&rec.trace)),
            Class::Stalled(_) => Err("stalled"),
            Class::TimedOut(_) => Err("timed out"),
            Class::Failed(_) => Err("failed"),
        };
        ex.outcomes.push((names(spec, perm), outcome));
    }
    let mut firsts: Vec<(usize, usize, Outcome)> =
        new.into_iter().map(|(o, (i, n))| (i, n, o)).collect();
    firsts.sort();
    for (i, count, outcome) in firsts {
        let perm = &plan.unlisted[i];
        let again = run_all(c, spec, std::slice::from_ref(perm), step_wait)?;
        if again
            .first()
            .is_none_or(|r| r.fatal.is_some() || Outcome::of(&r.trace) != outcome)
        {
            ex.unconfirmed += 1;
            continue;
        }
        let (closest, closest_outcome) = listed
            .iter()
            .min_by_key(|(_, o)| outcome.distance(o))
            .expect("a spec with listed permutations");
        ex.findings.push(Finding {
            interleaving: names(spec, perm),
            differences: outcome.differences(closest_outcome),
            closest: closest.clone(),
            outcome,
            count,
            after: i as u64 + 1,
            switches: perm
                .windows(2)
                .filter(|w| w[0].session != w[1].session)
                .count() as u32,
            token: token(name, source, spec, perm)?,
        });
    }
    ex.seconds = started.elapsed().as_secs_f64();
    Ok(ex)
}
