//! One exploration judged against the variant's expectation, as a `summary.json` row.

use std::sync::Arc;

use reports::{Finding, Outcome, RunResult};

use super::row::blank_row;
use racelab_core::explore::{collect, EngineConfig, Exploration, Refusal};
use racelab_core::replay;
use racelab_lang::ir::{Expected, Program};

/// Turns one exploration into a `summary.json` row, judged against the variant's expectation.
pub fn result_row(
    stem: &str,
    prog: &Arc<Program>,
    cfg: &EngineConfig,
    outcome: Result<Exploration, Refusal>,
) -> RunResult {
    // The model is judged against `expect`, never `expect real`.
    let mut row = blank_row(
        stem,
        prog,
        cfg.kind.name(),
        "model".to_string(),
        prog.expected.as_ref(),
    );
    let expected_invariants = row.expected_invariants.clone();
    row.faults = (!prog.faults.is_empty()).then(|| {
        let names: Vec<String> = prog
            .faults
            .iter()
            .map(|f| f.text.trim_start_matches("fault ").to_string())
            .collect();
        format!(
            "at most {} per execution of: {}",
            prog.fault_budget,
            names.join("; ")
        )
    });
    row.env = prog.isolation_levels().map(|level| reports::Env {
        isolation_level: Some(level),
        ..Default::default()
    });
    row.bound = Some(cfg.describe_bound());
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
    let (coverage, covers) = racelab_core::coverage::of_exploration(cfg, &ex);
    row.coverage = Some(coverage);
    row.covers = Some(covers);
    row.assumptions = racelab_core::coverage::model_assumptions(prog);
    row.states = ex.states;
    row.bound = Some(ex.bound.clone());
    if prog.expected.is_none() {
        row.outcome = Outcome::Error;
        row.reason = Some(format!("variant `{}` states no expectation; explore it, then write `expect ...` in the scenario", prog.variant));
        return row;
    }
    if ex.schedules == 0 {
        row.outcome = Outcome::Error;
        row.reason =
            Some("no schedule was explored; a verdict from zero schedules would be a lie".into());
        return row;
    }
    let shrunk: Vec<(racelab_core::schedule::Schedule, u32)> = ex
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
        .map(|(f, (s, n))| Finding {
            invariant: f.invariant.clone(),
            replay: s.encode(),
            original: f.schedule.encode(),
            after: f.after,
            switches: f.schedule.switches(),
            shrunk_switches: *n,
        })
        .collect();
    let primary = ex
        .findings
        .iter()
        .position(|f| expected_invariants.contains(&f.invariant))
        .or(if ex.findings.is_empty() {
            None
        } else {
            Some(0)
        });
    if let Some(i) = primary {
        let f = &ex.findings[i];
        row.outcome = if f.invariant == racelab_lang::ir::oracle::DEADLOCK {
            Outcome::Deadlock
        } else {
            Outcome::Violation
        };
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
        Some(Expected::Violates(names)) => {
            names.iter().all(|n| found.contains(&n.as_str()))
                && found.iter().all(|f| names.iter().any(|n| n == f))
        }
        Some(Expected::Deadlock) => {
            found.contains(&racelab_lang::ir::oracle::DEADLOCK)
                && found.iter().all(|f| {
                    *f == racelab_lang::ir::oracle::DEADLOCK
                        || collect::tolerated(&prog.expected, f)
                })
        }
        None => false,
    };
    row
}
