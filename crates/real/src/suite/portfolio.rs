//! Running the model's jobs: each variant's engines as a portfolio (a native-dfs proof settles
//! it for the others), variants in parallel, and the portfolio's judgement of its rows.

use rayon::prelude::*;
use reports::{Outcome, RunResult, Verdict};

use super::{result_row, Job};
use racelab_core::explore::{self, EngineConfig, EngineKind};

/// Runs every job, variants in parallel (rayon), calling `progress` after each.
///
/// A variant's engines are a portfolio that stops when its verdict is settled: native-dfs runs
/// first, and when it proves the variant over every reachable state the other engines are not
/// run (their rows say "proved by native-dfs"): no schedule they could try is outside that proof.
/// When it finds a violation or runs out of budget the others run as usual, since each adds
/// information (how soon it finds the bug, a search the state bound did not finish).
pub fn run(jobs: &[Job], progress: &(dyn Fn(&RunResult) + Sync)) -> Vec<RunResult> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        match groups.iter_mut().find(|g| {
            jobs[g[0]].scenario == job.scenario && jobs[g[0]].prog.variant == job.prog.variant
        }) {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }
    let mut indexed: Vec<(usize, RunResult)> = groups
        .par_iter()
        .flat_map_iter(|g| run_variant(jobs, g, progress))
        .collect();
    indexed.sort_by_key(|(i, _)| *i);
    let mut rows: Vec<RunResult> = indexed.into_iter().map(|(_, r)| r).collect();
    judge_portfolio(&mut rows);
    rows
}

/// One variant's jobs (indices into `jobs`): the prover first, then the rest unless it proved.
fn run_variant(
    jobs: &[Job],
    group: &[usize],
    progress: &(dyn Fn(&RunResult) + Sync),
) -> Vec<(usize, RunResult)> {
    let run_one = |i: usize| {
        let job = &jobs[i];
        let r = result_row(
            &job.scenario,
            &job.prog,
            &job.config,
            explore::explore(&job.prog, &job.config),
        );
        progress(&r);
        (i, r)
    };
    let prover = group
        .iter()
        .copied()
        .find(|&i| jobs[i].config.kind == EngineKind::NativeDfs);
    let mut out = Vec::with_capacity(group.len());
    if let Some(p) = prover {
        out.push(run_one(p));
    }
    let proof = out.first().map(|(_, r)| r).filter(|r| is_proof(r)).cloned();
    let rest: Vec<usize> = group
        .iter()
        .copied()
        .filter(|&i| Some(i) != prover)
        .collect();
    match proof {
        Some(proof) => out.extend(rest.into_iter().map(|i| {
            let r = proved_row(&jobs[i].config, &proof);
            progress(&r);
            (i, r)
        })),
        None => out.extend(rest.par_iter().map(|&i| run_one(i)).collect::<Vec<_>>()),
    }
    out
}

/// Whether a row is a proof over every reachable state: native-dfs covered its whole state
/// graph (no preemption or depth bound, no state or time limit hit) and nothing broke.
pub fn is_proof(row: &RunResult) -> bool {
    row.engine == EngineKind::NativeDfs.name()
        && row.exhaustive
        && row.outcome == Outcome::Holds
        && row.findings.is_empty()
}

/// The row of an engine that was not run because native-dfs proved the variant: the proof's
/// verdict, zero schedules of its own, and a reason that says so.
pub fn proved_row(cfg: &EngineConfig, proof: &RunResult) -> RunResult {
    RunResult {
        engine: cfg.kind.name().to_string(),
        exhaustive: false,
        schedules: 0,
        seconds: 0.0,
        states: None,
        bound: Some(cfg.describe_bound()),
        proved_by: Some(proof.engine.clone()),
        covers: Some(format!("{}'s proof: {}", proof.engine, proof.covers.as_deref().unwrap_or("every reachable state"))),
        reason: Some(format!(
            "not run: {} proved this variant over every reachable state ({} states in {:.2}s), so no schedule of this engine can break it",
            proof.engine,
            proof.states.unwrap_or(0),
            proof.seconds
        )),
        ..proof.clone()
    }
}

/// A violation is established by the portfolio, not by each engine: an engine that did not
/// find an expected violation within its budget has not contradicted it (it was looking at a
/// different part of the search space), as long as another engine found it and this engine saw
/// nothing unexpected. Such rows are met, with a reason that says who found what.
pub fn judge_portfolio(rows: &mut [RunResult]) {
    let snapshot: Vec<(String, String, String, Vec<String>)> = rows
        .iter()
        .map(|r| {
            (
                r.scenario.clone(),
                r.variant.clone(),
                r.engine.clone(),
                r.findings.iter().map(|f| f.invariant.clone()).collect(),
            )
        })
        .collect();
    for r in rows.iter_mut() {
        if r.met
            || r.expected == Verdict::Holds
            || r.outcome == Outcome::Skipped
            || r.outcome == Outcome::Error
        {
            continue;
        }
        let own: Vec<&str> = r.findings.iter().map(|f| f.invariant.as_str()).collect();
        let deadlock_tolerates =
            |f: &str| r.expected == Verdict::Deadlock && f == racelab_lang::ir::oracle::LOCK_ORDER;
        if own
            .iter()
            .any(|f| !r.expected_invariants.iter().any(|e| e == f) && !deadlock_tolerates(f))
        {
            continue;
        }
        let missing: Vec<&String> = r
            .expected_invariants
            .iter()
            .filter(|e| !own.contains(&e.as_str()))
            .collect();
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
                missing
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                r.bound.as_deref().unwrap_or("its budget"),
                found_by.join("; ")
            ));
        }
    }
}
