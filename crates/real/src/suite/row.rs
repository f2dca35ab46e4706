//! The result row: [`blank_row`] starts every row of the harness (model, real filesystem, real
//! database, gate) from `RunResult::unmeasured`, the one place its fields are written out, and the helpers here
//! fill the parts several kinds of rows share (rates, divergences, coverage of real runs).

use reports::{Outcome, RunResult, Verdict};

use crate::backend::forced::Divergence;
use crate::backend::stress::{wilson, InvariantRate};
use racelab_lang::ir::{Expected, Program};

/// A row with nothing measured yet: the variant, its engine and backend, and the expectation it
/// is judged against; an error until a result says otherwise, every other field empty.
pub(super) fn blank_row(
    stem: &str,
    prog: &Program,
    engine: &str,
    backend: String,
    expectation: Option<&Expected>,
) -> RunResult {
    RunResult::unmeasured(
        stem,
        &prog.variant,
        engine,
        backend,
        verdict_of(expectation),
    )
}

/// A blank row of a real backend (`fs:NAME`), judged against what the variant expects of a real
/// system (`expect real ...` when it differs from the model).
pub(crate) fn base_row(stem: &str, prog: &Program, engine: &str, backend: &str) -> RunResult {
    blank_row(
        stem,
        prog,
        engine,
        format!("fs:{backend}"),
        prog.expected_real.as_ref().or(prog.expected.as_ref()),
    )
}

/// A real row that did not run, and why (never a pass).
pub(super) fn skipped_row(
    stem: &str,
    prog: &Program,
    engine: &str,
    backend: &str,
    why: &str,
) -> RunResult {
    RunResult {
        outcome: Outcome::Skipped,
        reason: Some(why.to_string()),
        ..base_row(stem, prog, engine, backend)
    }
}

/// A real row whose backend failed under it: an infrastructure error, not a result.
pub(super) fn error_row(
    stem: &str,
    prog: &Program,
    engine: &str,
    backend: &str,
    why: &str,
) -> RunResult {
    RunResult {
        outcome: Outcome::Error,
        reason: Some(format!("the real backend failed: {why}")),
        ..base_row(stem, prog, engine, backend)
    }
}

/// `coverage` and `covers` of runs on a real system, as the row fields take them.
pub(super) fn real_coverage(runs: u64, what: &str) -> (Option<reports::Coverage>, Option<String>) {
    let (c, text) = racelab_core::coverage::of_real_runs(runs, what);
    (Some(c), Some(text))
}

/// How often forced replays reproduced, with its 95% Wilson interval.
pub(super) fn forced_rate(hits: u64, runs: u64) -> reports::Rate {
    let (low, high) = wilson(hits, runs);
    reports::Rate {
        hits,
        runs,
        low,
        high,
    }
}

/// One invariant's stress rate, as the row's `rate`.
pub(super) fn rate_of(r: &InvariantRate) -> reports::Rate {
    reports::Rate {
        hits: r.hits,
        runs: r.runs,
        low: r.low,
        high: r.high,
    }
}

/// Every invariant's stress rate, as the row's `rates`.
pub(super) fn rates_of(rates: &[InvariantRate]) -> Vec<reports::InvariantRate> {
    rates
        .iter()
        .map(|x| reports::InvariantRate {
            invariant: x.invariant.clone(),
            hits: x.hits,
            runs: x.runs,
            low: x.low,
            high: x.high,
        })
        .collect()
}

/// Where a forced replay left the model, as the row's `divergence`.
pub(super) fn divergence_of(d: Divergence) -> reports::Divergence {
    reports::Divergence {
        step: d.step,
        actor: d.actor,
        operation: d.operation,
        model: d.model,
        real: d.real,
    }
}

/// An expectation as `summary.json` states it: the verdict and the invariants it names.
pub(super) fn verdict_of(expected: Option<&Expected>) -> (Verdict, Vec<String>) {
    match expected {
        Some(Expected::Violates(names)) => (Verdict::Violation, names.clone()),
        Some(Expected::Deadlock) => (
            Verdict::Deadlock,
            vec![racelab_lang::ir::oracle::DEADLOCK.to_string()],
        ),
        Some(Expected::Holds) | None => (Verdict::Holds, vec![]),
    }
}
