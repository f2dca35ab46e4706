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
use super::run::{run_recorded, Link, Recorded, TableRows, Trace, Watch};
use racelab_core::schedule::{Schedule, TokenError};

/// The `variant` of an isolation spec's tokens (a scenario's tokens name a scenario variant).
pub const TOKEN_VARIANT: &str = "pg-isolation";

/// The interleavings to run for a spec.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The spec's listed permutations, with their markers.
    pub listed: Vec<Vec<PermStep>>,
    /// The unlisted interleavings chosen to run.
    pub unlisted: Vec<Vec<PermStep>>,
    /// How many unlisted interleavings exist (saturating).
    pub unlisted_total: u64,
    /// Every unlisted interleaving is in `unlisted`.
    pub exhaustive: bool,
}

/// Each session's steps in a permutation, in order.
fn programs(spec: &Spec, perm: &[PermStep]) -> Vec<Vec<usize>> {
    let mut p = vec![Vec::new(); spec.sessions.len()];
    for s in perm {
        p[s.session].push(s.step);
    }
    p
}

fn key(perm: &[PermStep]) -> Vec<(usize, usize)> {
    perm.iter().map(|s| (s.session, s.step)).collect()
}

/// The number of merges of sequences of these lengths (a multinomial), saturating.
fn merges(lengths: &[usize]) -> u64 {
    let mut total: u64 = 0;
    let mut count: u64 = 1;
    for &n in lengths {
        for k in 1..=n as u64 {
            total += 1;
            count = count.saturating_mul(total) / k;
        }
    }
    count
}

/// The interleaving that takes sessions in the order `order` (each session's steps in turn).
fn interleave(program: &[Vec<usize>], order: &[usize]) -> Vec<PermStep> {
    let mut next = vec![0; program.len()];
    order
        .iter()
        .map(|&s| {
            let step = program[s][next[s]];
            next[s] += 1;
            PermStep {
                session: s,
                step,
                blockers: vec![],
            }
        })
        .collect()
}

/// Every merge of the sessions' programs, lowest session first (as isolationtester orders them).
fn every_merge(program: &[Vec<usize>]) -> Vec<Vec<PermStep>> {
    let mut out = Vec::new();
    let mut left: Vec<usize> = program.iter().map(Vec::len).collect();
    let mut order = Vec::new();
    fn walk(
        program: &[Vec<usize>],
        left: &mut [usize],
        order: &mut Vec<usize>,
        out: &mut Vec<Vec<PermStep>>,
    ) {
        if left.iter().all(|&n| n == 0) {
            out.push(interleave(program, order));
            return;
        }
        for s in 0..left.len() {
            if left[s] > 0 {
                left[s] -= 1;
                order.push(s);
                walk(program, left, order, out);
                order.pop();
                left[s] += 1;
            }
        }
    }
    walk(program, &mut left, &mut order, &mut out);
    out
}

/// SplitMix64: a small seeded generator, so a budgeted exploration is the same run to run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A merge drawn uniformly: each position goes to a session with probability proportional to
/// the steps it has left.
fn random_merge(program: &[Vec<usize>], rng: &mut Rng) -> Vec<PermStep> {
    let mut left: Vec<usize> = program.iter().map(Vec::len).collect();
    let mut order = Vec::new();
    loop {
        let total: usize = left.iter().sum();
        if total == 0 {
            return interleave(program, &order);
        }
        let mut pick = rng.below(total as u64) as usize;
        let s = left
            .iter()
            .position(|&n| {
                if pick < n {
                    true
                } else {
                    pick -= n;
                    false
                }
            })
            .expect("a pick below the total lands in some session");
        left[s] -= 1;
        order.push(s);
    }
}

/// The unlisted interleavings to run: every one when there are at most `budget`, otherwise
/// `budget` of them drawn with `seed`.
pub fn plan(spec: &Spec, budget: usize, seed: u64) -> Plan {
    let listed: Vec<Vec<PermStep>> = spec.permutations.iter().map(|p| p.steps.clone()).collect();
    let listed_keys: BTreeSet<Vec<(usize, usize)>> = listed.iter().map(|p| key(p)).collect();
    let mut program_sets: Vec<Vec<Vec<usize>>> = Vec::new();
    for p in &listed {
        let prog = programs(spec, p);
        if !program_sets.contains(&prog) {
            program_sets.push(prog);
        }
    }
    // Listed permutations of each program set (a permutation listed twice counts once).
    let mut listed_in = vec![0u64; program_sets.len()];
    for k in &listed_keys {
        let perm: Vec<PermStep> = k
            .iter()
            .map(|&(session, step)| PermStep {
                session,
                step,
                blockers: vec![],
            })
            .collect();
        let prog = programs(spec, &perm);
        if let Some(i) = program_sets.iter().position(|p| *p == prog) {
            listed_in[i] += 1;
        }
    }
    let unlisted_total = program_sets
        .iter()
        .zip(&listed_in)
        .map(|(p, l)| merges(&p.iter().map(Vec::len).collect::<Vec<_>>()).saturating_sub(*l))
        .fold(0u64, u64::saturating_add);
    let mut unlisted = Vec::new();
    let exhaustive = unlisted_total <= budget as u64;
    if exhaustive {
        for p in &program_sets {
            unlisted.extend(
                every_merge(p)
                    .into_iter()
                    .filter(|m| !listed_keys.contains(&key(m))),
            );
        }
    } else if budget > 0 {
        let mut rng = Rng(seed ^ u64::from(racelab_core::lang::fnv32(0x811c_9dc5, b"pg-isolation")));
        let mut seen = listed_keys.clone();
        let mut tries = 0;
        // Program sets with unlisted interleavings left, in turn.
        let open: Vec<usize> = (0..program_sets.len())
            .filter(|&i| {
                merges(&program_sets[i].iter().map(Vec::len).collect::<Vec<_>>()) > listed_in[i]
            })
            .collect();
        while unlisted.len() < budget && tries < budget * 50 && !open.is_empty() {
            let set = open[tries % open.len()];
            tries += 1;
            let m = random_merge(&program_sets[set], &mut rng);
            if seen.insert(key(&m)) {
                unlisted.push(m);
            }
        }
    }
    Plan {
        listed,
        unlisted,
        unlisted_total,
        exhaustive,
    }
}

/// What a run changed and what failed (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Outcome {
    /// (step, SQLSTATE) of each error raised.
    pub errors: BTreeSet<(String, String)>,
    /// The tables at the end, or why they could not be read.
    pub tables: Result<Vec<TableRows>, String>,
}

/// PostgreSQL's names for the SQLSTATEs isolation specs run into.
fn condition(code: &str) -> &'static str {
    match code {
        "40P01" => "deadlock_detected",
        "40001" => "serialization_failure",
        "55P03" => "lock_not_available",
        "23505" => "unique_violation",
        "23503" => "foreign_key_violation",
        "57014" => "query_canceled",
        "25P02" => "in_failed_sql_transaction",
        "42P01" => "undefined_table",
        "22012" => "division_by_zero",
        "P0001" => "raise_exception",
        _ => "",
    }
}

fn describe_error((step, code): &(String, String)) -> String {
    match condition(code) {
        "" => format!("{step} {code}"),
        name => format!("{step} {code} {name}"),
    }
}

impl Outcome {
    fn of(trace: &Trace) -> Outcome {
        Outcome {
            errors: trace.errors.iter().cloned().collect(),
            tables: trace
                .tables
                .clone()
                .unwrap_or_else(|| Err("the run ended before the tables were read".into())),
        }
    }

    /// One line: the errors, then each table's rows.
    pub fn describe(&self) -> String {
        let errors = if self.errors.is_empty() {
            "no errors".to_string()
        } else {
            let e: Vec<String> = self.errors.iter().map(describe_error).collect();
            format!("errors {}", e.join(", "))
        };
        let tables = match &self.tables {
            Ok(t) => t
                .iter()
                .map(|t| format!("{} {}", t.table, show_rows(&t.rows)))
                .collect::<Vec<_>>()
                .join("; "),
            Err(e) => format!("tables unreadable: {e}"),
        };
        format!("{errors}; {tables}")
    }

    /// How far apart two outcomes are: errors and rows in one and not the other.
    fn distance(&self, other: &Outcome) -> usize {
        let errors = self.errors.symmetric_difference(&other.errors).count();
        let rows = match (&self.tables, &other.tables) {
            (Ok(a), Ok(b)) => {
                let flat = |t: &[TableRows]| -> BTreeSet<(String, String)> {
                    t.iter()
                        .flat_map(|t| t.rows.iter().map(|r| (t.table.clone(), r.clone())))
                        .collect()
                };
                flat(a).symmetric_difference(&flat(b)).count()
            }
            (a, b) => usize::from(a != b) * 100,
        };
        errors + rows
    }

    /// What this outcome has that `listed` has not, and the reverse.
    pub fn differences(&self, listed: &Outcome) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.errors.difference(&listed.errors) {
            out.push(format!("error {} (no such error there)", describe_error(e)));
        }
        for e in listed.errors.difference(&self.errors) {
            out.push(format!("no error {} (there is)", describe_error(e)));
        }
        match (&self.tables, &listed.tables) {
            (Ok(a), Ok(b)) => {
                let by_name = |t: &[TableRows]| -> BTreeMap<String, Vec<String>> {
                    t.iter()
                        .map(|t| (t.table.clone(), t.rows.clone()))
                        .collect()
                };
                let (a, b) = (by_name(a), by_name(b));
                for (name, rows) in &a {
                    match b.get(name) {
                        Some(other) if other == rows => {}
                        Some(other) => out.push(format!(
                            "table {name} {} (there: {})",
                            show_rows(rows),
                            show_rows(other)
                        )),
                        None => out.push(format!("table {name} exists (not there)")),
                    }
                }
                for name in b.keys().filter(|n| !a.contains_key(*n)) {
                    out.push(format!("no table {name} (there is)"));
                }
            }
            (a, b) if a != b => out.push(format!("tables {:?} (there: {:?})", a, b)),
            _ => {}
        }
        out
    }
}

fn show_rows(rows: &[String]) -> String {
    const SHOWN: usize = 12;
    if rows.len() <= SHOWN {
        format!("[{}]", rows.join(" "))
    } else {
        format!(
            "[{} … {} more, {} rows]",
            rows[..SHOWN].join(" "),
            rows.len() - SHOWN,
            rows.len()
        )
    }
}

/// How an unlisted interleaving's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// Its outcome is one a listed permutation produced.
    Seen,
    /// Its outcome is new (a finding when a second run confirms it).
    New(Outcome),
    /// A step waited on a session with no step before it; cancelled at once.
    Stalled(Vec<String>),
    /// A step ran past the step timeout and was cancelled.
    TimedOut(Vec<String>),
    /// The run failed (isolationtester would have exited).
    Failed(String),
}

/// How an unlisted interleaving's run ends, given the listed permutations' outcomes.
pub fn classify(rec: &Recorded, listed: &BTreeSet<Outcome>) -> Class {
    if let Some(e) = &rec.fatal {
        return Class::Failed(e.clone());
    }
    if !rec.trace.stalled.is_empty() {
        return Class::Stalled(rec.trace.stalled.clone());
    }
    if !rec.trace.timed_out.is_empty() {
        return Class::TimedOut(rec.trace.timed_out.clone());
    }
    let o = Outcome::of(&rec.trace);
    if listed.contains(&o) {
        Class::Seen
    } else {
        Class::New(o)
    }
}

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

fn fingerprint(source: &str) -> u32 {
    racelab_core::lang::fnv32(0x811c_9dc5, source.as_bytes())
}

/// The replay token of an interleaving of spec `name` (whose text is `source`): the steps by
/// their index among all the spec's steps, session by session.
pub fn token(name: &str, source: &str, spec: &Spec, perm: &[PermStep]) -> Result<String, String> {
    let offsets = offsets(spec);
    let steps = perm
        .iter()
        .map(|p| u8::try_from(offsets[p.session] + p.step))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| {
            format!("spec {name} has more than 256 steps: its interleavings have no token")
        })?;
    Ok(Schedule {
        scenario: name.to_string(),
        variant: TOKEN_VARIANT.to_string(),
        fingerprint: fingerprint(source),
        target: None,
        steps,
        params: vec![],
    }
    .encode())
}

fn offsets(spec: &Spec) -> Vec<usize> {
    let mut acc = 0;
    spec.sessions
        .iter()
        .map(|s| {
            let o = acc;
            acc += s.steps.len();
            o
        })
        .collect()
}

/// The interleaving a token names, refusing a token of another spec, of an edited spec, or
/// of a scenario.
pub fn decode(token: &str, name: &str, source: &str, spec: &Spec) -> Result<Vec<PermStep>, String> {
    let sched = Schedule::decode(token).map_err(|e| e.to_string())?;
    if sched.variant != TOKEN_VARIANT {
        return Err(format!(
            "this token was recorded for scenario `{}` variant `{}` (replay it with `racelab replay`), not for an isolation spec",
            sched.scenario, sched.variant
        ));
    }
    if sched.scenario != name {
        return Err(format!(
            "this token was recorded for isolation spec `{}`, not `{name}`; run `racelab isolation {}.spec --replay TOKEN`",
            sched.scenario, sched.scenario
        ));
    }
    if sched.fingerprint != fingerprint(source) {
        return Err(TokenError::Stale {
            scenario: name.to_string(),
            variant: TOKEN_VARIANT.to_string(),
        }
        .to_string()
        .replace(
            "run `racelab explore` again",
            "run `racelab isolation --explore` again",
        ));
    }
    let offsets = offsets(spec);
    sched
        .steps
        .iter()
        .map(|&g| {
            let g = usize::from(g);
            let session = offsets.iter().rposition(|&o| o <= g).unwrap_or(0);
            let step = g - offsets[session];
            if step >= spec.sessions[session].steps.len() {
                return Err(format!(
                    "the token names step #{g}, and spec {name} has fewer steps"
                ));
            }
            Ok(PermStep {
                session,
                step,
                blockers: vec![],
            })
        })
        .collect()
}
