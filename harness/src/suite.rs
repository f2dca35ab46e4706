//! The suite: every scenario × variant × engine, turned into `summary.json` result rows.

use std::sync::Arc;
use std::time::Duration;

use rayon::prelude::*;
use reports::{Finding, Outcome, RunResult, Verdict};

use crate::explore::{self, collect, Budget, EngineConfig, EngineKind, Exploration, Refusal};
use crate::ir::{Expected, Program};
use crate::lang::Scenario;
use crate::replay;

/// How hard the suite explores.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SuiteConfig {
    /// Per engine run.
    pub budget: Budget,
    /// Random and PCT seed.
    pub seed: u64,
    pub preemption_bound: usize,
}

impl SuiteConfig {
    /// `--quick`: the whole built-in suite in under two minutes on two cores.
    pub fn quick() -> SuiteConfig {
        SuiteConfig { budget: Budget::new(20_000, Duration::from_secs(8)), seed: 0x5eed, preemption_bound: 2 }
    }
    pub fn full() -> SuiteConfig {
        SuiteConfig { budget: Budget::new(200_000, Duration::from_secs(60)), seed: 0x5eed, preemption_bound: 3 }
    }
}

/// One unit of work: a variant under an engine.
pub struct Job {
    pub scenario: String,
    pub prog: Arc<Program>,
    pub config: EngineConfig,
}

pub fn jobs(scenarios: &[(String, Scenario)], cfg: &SuiteConfig, engines: &[EngineKind]) -> Vec<Job> {
    let mut out = Vec::new();
    for (stem, sc) in scenarios {
        for prog in &sc.variants {
            for &kind in engines {
                let config = EngineConfig::new(kind, cfg.budget).seed(cfg.seed).preemption_bound(cfg.preemption_bound);
                out.push(Job { scenario: stem.clone(), prog: Arc::new(prog.clone()), config });
            }
        }
    }
    out
}

/// Runs every job in parallel (rayon), calling `progress` after each.
pub fn run(jobs: &[Job], progress: &(dyn Fn(&RunResult) + Sync)) -> Vec<RunResult> {
    let mut rows: Vec<RunResult> = jobs
        .par_iter()
        .map(|job| {
            let r = result_row(&job.scenario, &job.prog, &job.config, explore::explore(&job.prog, &job.config));
            progress(&r);
            r
        })
        .collect();
    judge_portfolio(&mut rows);
    rows
}

/// A violation is established by the portfolio, not by each engine: an engine that did not
/// find an expected violation within its budget has not contradicted it (it was looking at a
/// different part of the search space), as long as another engine found it and this engine saw
/// nothing unexpected. Such rows are met, with a reason that says who found what.
pub fn judge_portfolio(rows: &mut [RunResult]) {
    let snapshot: Vec<(String, String, String, Vec<String>)> = rows
        .iter()
        .map(|r| (r.scenario.clone(), r.variant.clone(), r.engine.clone(), r.findings.iter().map(|f| f.invariant.clone()).collect()))
        .collect();
    for r in rows.iter_mut() {
        if r.met || r.expected == Verdict::Holds || r.outcome == Outcome::Skipped || r.outcome == Outcome::Error {
            continue;
        }
        let own: Vec<&str> = r.findings.iter().map(|f| f.invariant.as_str()).collect();
        let deadlock_tolerates = |f: &str| r.expected == Verdict::Deadlock && f == crate::ir::oracle::LOCK_ORDER;
        if own.iter().any(|f| !r.expected_invariants.iter().any(|e| e == f) && !deadlock_tolerates(f)) {
            continue;
        }
        let missing: Vec<&String> = r.expected_invariants.iter().filter(|e| !own.contains(&e.as_str())).collect();
        let mut found_by = Vec::new();
        let mut all_found = true;
        for m in &missing {
            let engines: Vec<&str> = snapshot
                .iter()
                .filter(|(s, v, _, f)| *s == r.scenario && *v == r.variant && f.contains(m))
                .map(|(_, _, e, _)| e.as_str())
                .collect();
            if engines.is_empty() {
                all_found = false;
            } else {
                found_by.push(format!("{m} by {}", engines.join(", ")));
            }
        }
        if all_found {
            r.met = true;
            r.reason = Some(format!(
                "this engine did not find {} within its bound ({}); the portfolio did: {}",
                missing.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", "),
                r.bound.as_deref().unwrap_or("its budget"),
                found_by.join("; ")
            ));
        }
    }
}

/// Turns one exploration into a `summary.json` row, judged against the variant's expectation.
pub fn result_row(stem: &str, prog: &Arc<Program>, cfg: &EngineConfig, outcome: Result<Exploration, Refusal>) -> RunResult {
    let (expected, expected_invariants) = match &prog.expected {
        Some(Expected::Violates(names)) => (Verdict::Violation, names.clone()),
        Some(Expected::Deadlock) => (Verdict::Deadlock, vec![crate::ir::oracle::DEADLOCK.to_string()]),
        Some(Expected::Holds) | None => (Verdict::Holds, vec![]),
    };
    let mut row = RunResult {
        scenario: stem.to_string(),
        variant: prog.variant.clone(),
        engine: cfg.kind.name().to_string(),
        backend: "model".to_string(),
        faults: (!prog.faults.is_empty()).then(|| {
            let names: Vec<String> = prog.faults.iter().map(|f| f.text.trim_start_matches("fault ").to_string()).collect();
            format!("at most {} per execution of: {}", prog.fault_budget, names.join("; "))
        }),
        expected,
        expected_invariants: expected_invariants.clone(),
        outcome: Outcome::Error,
        invariant: None,
        exhaustive: false,
        schedules: 0,
        seconds: 0.0,
        first_failure_after: None,
        replay: None,
        met: false,
        findings: vec![],
        switches: None,
        shrunk_switches: None,
        rate: None,
        rates: vec![],
        divergence: None,
        env: None,
        bound: Some(cfg.describe_bound()),
        reason: None,
        trace: None,
    };
    let ex = match outcome {
        Ok(ex) => ex,
        Err(Refusal(why)) => {
            row.outcome = Outcome::Skipped;
            row.reason = Some(why);
            return row;
        }
    };
    row.schedules = ex.schedules;
    row.seconds = ex.seconds;
    row.exhaustive = ex.exhaustive;
    if prog.expected.is_none() {
        row.outcome = Outcome::Error;
        row.reason = Some(format!("variant `{}` states no expectation; explore it, then write `expect ...` in the scenario", prog.variant));
        return row;
    }
    if ex.schedules == 0 {
        row.outcome = Outcome::Error;
        row.reason = Some("no schedule was explored; a verdict from zero schedules would be a lie".into());
        return row;
    }
    let shrunk: Vec<(crate::schedule::Schedule, u32)> = ex
        .findings
        .iter()
        .map(|f| {
            let s = replay::shrink(prog, &f.schedule);
            let n = s.switches();
            (s, n)
        })
        .collect();
    row.findings = ex
        .findings
        .iter()
        .zip(&shrunk)
        .map(|(f, (s, n))| Finding { invariant: f.invariant.clone(), replay: s.encode(), after: f.after, switches: f.schedule.switches(), shrunk_switches: *n })
        .collect();
    let primary = ex
        .findings
        .iter()
        .position(|f| expected_invariants.contains(&f.invariant))
        .or(if ex.findings.is_empty() { None } else { Some(0) });
    if let Some(i) = primary {
        let f = &ex.findings[i];
        row.outcome = if f.invariant == crate::ir::oracle::DEADLOCK { Outcome::Deadlock } else { Outcome::Violation };
        row.invariant = Some(f.invariant.clone());
        row.first_failure_after = ex.findings.iter().map(|f| f.after).min();
        row.replay = Some(row.findings[i].replay.clone());
        row.switches = Some(row.findings[i].switches);
        row.shrunk_switches = Some(row.findings[i].shrunk_switches);
        row.trace = replay::replay(prog, &shrunk[i].0).ok().map(|r| r.trace);
    } else {
        row.outcome = Outcome::Holds;
    }
    let found: Vec<&str> = ex.findings.iter().map(|f| f.invariant.as_str()).collect();
    row.met = match &prog.expected {
        Some(Expected::Holds) => found.is_empty(),
        Some(Expected::Violates(names)) => names.iter().all(|n| found.contains(&n.as_str())) && found.iter().all(|f| names.iter().any(|n| n == f)),
        Some(Expected::Deadlock) => {
            found.contains(&crate::ir::oracle::DEADLOCK) && found.iter().all(|f| *f == crate::ir::oracle::DEADLOCK || collect::tolerated(&prog.expected, f))
        }
        None => false,
    };
    row
}

/// Exit code of a run of results: 0 all met, 1 an expectation failed, 3 an infrastructure error.
pub fn exit_code(results: &[RunResult]) -> i32 {
    if results.iter().any(|r| r.outcome == Outcome::Error) {
        return 3;
    }
    // Nothing ran at all: that is not a pass.
    if results.iter().all(|r| r.outcome == Outcome::Skipped) {
        return 3;
    }
    if results.iter().any(|r| r.outcome != Outcome::Skipped && !r.met) {
        return 1;
    }
    0
}

/// A stress campaign as a `summary.json` row: the rate of the primary expected invariant (or of
/// the first one that broke), every invariant's rate in `rates`, the filesystem in `env`.
/// Met when every expected violation was seen at least once (a race seen once is real), or,
/// for a variant expected to hold, when nothing broke.
pub fn stress_row(stem: &str, prog: &Arc<Program>, r: &crate::backend::stress::StressResult, root: &std::path::Path) -> RunResult {
    let (expected, expected_invariants) = match &prog.expected {
        Some(Expected::Violates(names)) => (Verdict::Violation, names.clone()),
        Some(Expected::Deadlock) => (Verdict::Deadlock, vec![crate::ir::oracle::DEADLOCK.to_string()]),
        Some(Expected::Holds) | None => (Verdict::Holds, vec![]),
    };
    let hit: Vec<&crate::backend::stress::InvariantRate> = r.rates.iter().filter(|x| x.hits > 0).collect();
    let primary = r.rates.iter().find(|x| expected_invariants.contains(&x.invariant) && x.hits > 0).or(hit.first().copied());
    let met = match expected {
        Verdict::Holds => hit.is_empty(),
        _ => expected_invariants.iter().all(|e| hit.iter().any(|h| &h.invariant == e)),
    };
    let shown = primary.or_else(|| r.rates.iter().find(|x| expected_invariants.contains(&x.invariant)));
    RunResult {
        scenario: stem.to_string(),
        variant: prog.variant.clone(),
        engine: if r.chaos { "stress-chaos".into() } else { "stress".into() },
        backend: format!("fs:{}", r.env.fs_type),
        faults: (!prog.faults.is_empty()).then(|| "not injected in stress runs".to_string()),
        expected,
        expected_invariants,
        outcome: match primary {
            Some(p) if p.invariant == crate::ir::oracle::DEADLOCK => Outcome::Deadlock,
            Some(_) => Outcome::Violation,
            None => Outcome::Holds,
        },
        invariant: primary.map(|p| p.invariant.clone()),
        exhaustive: false,
        schedules: r.runs,
        seconds: r.seconds,
        first_failure_after: r.first_failure.as_ref().map(|(i, _, _)| i + 1),
        replay: r.first_failure.as_ref().map(|(_, s, _)| s.encode()),
        met,
        findings: vec![],
        switches: r.first_failure.as_ref().map(|(_, s, _)| s.switches()),
        shrunk_switches: None,
        rate: shown.map(|p| reports::Rate { hits: p.hits, runs: p.runs, low: p.low, high: p.high }),
        rates: r.rates.iter().map(|x| reports::InvariantRate { invariant: x.invariant.clone(), hits: x.hits, runs: x.runs, low: x.low, high: x.high }).collect(),
        divergence: None,
        env: Some(reports::Env { fs_type: Some(r.env.fs_type.clone()), mount_options: Some(r.env.options.clone()), ..Default::default() }),
        bound: Some(format!("{} free-running runs with {} actors{} in {}", r.runs, r.mode.name(), if r.chaos { " and chaos" } else { "" }, root.display())),
        reason: None,
        trace: r.first_failure.as_ref().map(|(_, _, t)| t.clone()),
    }
}
