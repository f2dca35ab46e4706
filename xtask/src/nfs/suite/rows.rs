//! The NFS rows: from the guest's gated runs, and marked skipped or errors when a pass could not run.

use std::path::PathBuf;

use reports::{Outcome, RunResult};

use super::plan::{gate_json, gate_runs, GateRun};
use super::{Params, GATE_REPLAY_ONLY, SCENARIOS, TARGETS};

/// The row of a gated replay: `racelab replay`'s exit status says whether the token broke its
/// invariant again (0), or not (1); anything else is an error with the output's last line.
pub(super) fn replay_row(
    p: &Params,
    run: &GateRun,
    token: &str,
    templates: &[RunResult],
) -> Result<RunResult, String> {
    let out = gate_json(p, run);
    let rc = std::fs::read_to_string(out.with_extension("rc"))
        .map_err(|e| format!("the gated replay in the guest left no exit status: {e}"))?;
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let reproduced = match rc.trim() {
        "0" => true,
        "1" => false,
        other => return Err(format!("racelab replay exited with {other}: {last}")),
    };
    // Tries whose schedule diverged before this one (see guest.rs, GATE_REPLAY_ATTEMPTS).
    let diverged: Vec<String> = std::fs::read_to_string(out.with_extension("diverged"))
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default();
    let tries = match diverged.first() {
        None => "once".to_string(),
        Some(first) => format!(
            "{} times: the first {} diverged ({first}), then",
            diverged.len() + 1,
            diverged.len()
        ),
    };
    let why = format!(
        "the documented token replayed {tries} through the gate on two NFS clients ({}): {last}",
        run.target
    );
    let mut row = gate_run_row(run, templates, Outcome::Holds, &why);
    row.schedules = 1;
    row.replay = Some(token.to_string());
    if reproduced {
        row.outcome = Outcome::Violation;
        row.invariant = Some(run.invariant.to_string());
        row.first_failure_after = Some(1);
    }
    row.met = reproduced;
    Ok(row)
}

/// A row for gated run `run` (its scenario, variant, engine and `gate:TARGET`), with its
/// variant's faults and assumptions when a row of that variant is among `templates`.
fn gate_run_row(run: &GateRun, templates: &[RunResult], outcome: Outcome, why: &str) -> RunResult {
    let template = templates
        .iter()
        .find(|t| t.scenario == run.scenario && t.variant == run.variant);
    RunResult {
        faults: template.and_then(|t| t.faults.clone()),
        assumptions: template.map(|t| t.assumptions.clone()).unwrap_or_default(),
        outcome,
        reason: Some(why.to_string()),
        ..RunResult::unmeasured(
            run.scenario,
            run.variant,
            run.engine(),
            format!("gate:{}", run.target),
            expectation(run, template),
        )
    }
}

/// What gated run `run` is judged against: a replay, its token's invariant broken again; an
/// exploration, its variant's expectation (a violation when no row of the variant is at hand).
fn expectation(run: &GateRun, template: Option<&RunResult>) -> (reports::Verdict, Vec<String>) {
    match (run.token, template) {
        (Some(_), _) => (reports::Verdict::Violation, vec![run.invariant.to_string()]),
        (None, Some(t)) => (t.expected, t.expected_invariants.clone()),
        (None, None) => (reports::Verdict::Violation, Vec::new()),
    }
}

/// The error row of gated run `run` that left no result: that run's own row, never another's.
pub(super) fn gate_error_row(run: &GateRun, templates: &[RunResult], why: &str) -> RunResult {
    gate_run_row(run, templates, Outcome::Error, why)
}

/// The row of a gated run, named after its target (`gate:nfs4x2`), or why the guest left none.
pub(super) fn gate_row(
    p: &Params,
    run: &GateRun,
    status: i32,
    templates: &[RunResult],
) -> Result<RunResult, String> {
    if let Some(token) = run.token {
        return replay_row(p, run, token, templates);
    }
    let path = gate_json(p, run);
    let rows = std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<Vec<RunResult>>(&t).map_err(|e| e.to_string()));
    match rows {
        Ok(rows) if rows.len() == 1 => {
            let mut row = rows.into_iter().next().expect("one row");
            row.backend = format!("gate:{}", run.target);
            Ok(row)
        }
        Ok(rows) => Err(format!(
            "{} rows in {} instead of one",
            rows.len(),
            path.display()
        )),
        Err(e) => Err(format!(
            "the gated run in the guest (exit {status}) left no rows in {}: {e}",
            path.display()
        )),
    }
}

/// Rows for the gated runs that did not happen, with the reason, one per run the guest would
/// have made, from the variant's forced-replay row (its expectation).
pub(super) fn gate_rows_not_run(
    templates: &[RunResult],
    outcome: Outcome,
    why: &str,
) -> Vec<RunResult> {
    let any_venv = Ok(PathBuf::new());
    gate_runs("uml", SCENARIOS, &any_venv)
        .iter()
        .filter_map(|g| {
            let t = templates
                .iter()
                .find(|t| t.scenario == g.scenario && t.variant == g.variant)?;
            let mut row = marked(t, g.target, outcome, why);
            row.engine = g.engine().into();
            row.backend = format!("gate:{}", g.target);
            Some(row)
        })
        .collect()
}

/// The error's first line, and the guest console's line that says what failed, if there is
/// one. [`crate::nfs::Error::NoGuest`] names every attempt's failing line on lines of their own.
pub(super) fn why_down(s: &str) -> String {
    if s.starts_with("no NFS guest could boot") {
        return s.lines().map(str::trim).collect::<Vec<_>>().join("; ");
    }
    let first = first_line(s);
    match s
        .lines()
        .find(|l| l.contains("failed") && !l.contains("find_iomem") && !l.contains("ubd device"))
    {
        Some(cause) if cause != first => format!("{first} (guest console: {})", cause.trim()),
        _ => first,
    }
}

pub(super) fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}

/// One row per lock-scenario variant that ran on a local real filesystem: the variants the
/// NFS targets would run.
pub(super) fn real_variants(rows: &[RunResult]) -> Vec<RunResult> {
    let mut out: Vec<RunResult> = Vec::new();
    for r in rows
        .iter()
        .filter(|r| SCENARIOS.contains(&r.scenario.as_str()) && r.backend.starts_with("fs:"))
    {
        if !out
            .iter()
            .any(|o| o.scenario == r.scenario && o.variant == r.variant)
        {
            out.push(r.clone());
        }
    }
    out
}

/// A row per variant and target that did not run, with the reason.
pub(super) fn rows_for_all(templates: &[RunResult], outcome: Outcome, why: &str) -> Vec<RunResult> {
    let mut rows: Vec<RunResult> = templates
        .iter()
        .filter(|t| !GATE_REPLAY_ONLY.contains(&t.scenario.as_str()))
        .flat_map(|t| TARGETS.iter().map(move |n| marked(t, n, outcome, why)))
        .collect();
    rows.extend(gate_rows_not_run(templates, outcome, why));
    rows
}

/// A row for `target` that did not run: the template's scenario, variant and expectation.
pub(super) fn marked(template: &RunResult, target: &str, outcome: Outcome, why: &str) -> RunResult {
    RunResult {
        faults: template.faults.clone(),
        assumptions: template.assumptions.clone(),
        outcome,
        reason: Some(why.to_string()),
        ..RunResult::unmeasured(
            &template.scenario,
            &template.variant,
            "forced-replay",
            format!("fs:{target}"),
            (template.expected, template.expected_invariants.clone()),
        )
    }
}
