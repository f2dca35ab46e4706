//! The portfolio: several engines and seeds on one scenario, in parallel on all cores (rayon).

use std::sync::Arc;

use rayon::prelude::*;

use super::{explore, EngineConfig, Exploration, Refusal};
use racelab_lang::ir::Program;

/// Runs every configuration in parallel; results come back in the order of `configs`.
pub fn run(
    prog: &Arc<Program>,
    configs: &[EngineConfig],
) -> Vec<(EngineConfig, Result<Exploration, Refusal>)> {
    configs
        .par_iter()
        .map(|cfg| (*cfg, explore(prog, cfg)))
        .collect()
}

/// The first finding of `invariant` across a portfolio's results, fewest schedules first.
pub fn first_finding<'a>(
    results: &'a [(EngineConfig, Result<Exploration, Refusal>)],
    invariant: &str,
) -> Option<&'a super::Found> {
    results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .flat_map(|e| e.findings.iter())
        .filter(|f| f.invariant == invariant)
        .min_by_key(|f| (f.after, f.schedule.steps.len()))
}
