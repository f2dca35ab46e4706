//! Scenario parameters: values drawn with proptest, and a failure shrunk to the smallest values
//! that still break the same invariant.
//!
//! A `param NAME in LOW..=HIGH` is a constant the scenario is compiled with; each draw compiles
//! the scenario again with new values and explores it with the given engine. When a draw
//! breaks an invariant, proptest's value tree shrinks the values (towards the low ends), each
//! candidate explored again, and the smallest values that still break the same invariant are
//! kept. Their schedule's token carries them, so `racelab replay` compiles the scenario with
//! them before replaying.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::explore::{self, EngineConfig, Exploration, Refusal};
use racelab_lang::ir::{ParamIr, Program};

/// One explored assignment of the parameters.
pub struct Draw {
    pub values: BTreeMap<String, i64>,
    pub prog: Arc<Program>,
    pub outcome: Result<Exploration, Refusal>,
}

/// What exploring over the parameters found.
pub struct ParamSearch {
    /// The draws explored, in order (shrinking candidates not included).
    pub draws: Vec<BTreeMap<String, i64>>,
    /// The first failing draw shrunk to the smallest values that still fail, or the last draw
    /// when none failed.
    pub result: Draw,
    /// The failing draw's values before shrinking, when one failed.
    pub failing_before_shrink: Option<BTreeMap<String, i64>>,
    /// Candidates explored while shrinking.
    pub shrink_steps: u32,
}

fn values(params: &[ParamIr], current: &[i64]) -> BTreeMap<String, i64> {
    params
        .iter()
        .zip(current)
        .map(|(p, v)| (p.name.clone(), *v))
        .collect()
}

/// Compiles `src` with `values`, picks `variant` and explores it with `cfg`.
fn explore_with(
    file: &str,
    src: &str,
    variant: &str,
    values: &BTreeMap<String, i64>,
    cfg: &EngineConfig,
) -> Result<Draw, String> {
    let sc =
        crate::lang::compile_with(file, src, values).map_err(|e| crate::lang::render_plain(&e))?;
    let prog = Arc::new(
        sc.variant(variant)
            .ok_or_else(|| format!("no variant `{variant}`"))?
            .clone(),
    );
    let outcome = explore::explore(&prog, cfg);
    Ok(Draw {
        values: values.clone(),
        prog,
        outcome,
    })
}

fn broke(d: &Draw, invariant: &str) -> bool {
    d.outcome
        .as_ref()
        .is_ok_and(|ex| ex.findings.iter().any(|f| f.invariant == invariant))
}

/// Explores `variant` of the scenario in `src` with its parameters at their low ends, then over
/// `draws` random draws (seeded by `seed`), stopping at the first that breaks something, which
/// is then shrunk.
pub fn search(
    file: &str,
    src: &str,
    variant: &str,
    params: &[ParamIr],
    cfg: &EngineConfig,
    draws: u32,
    seed: u64,
) -> Result<ParamSearch, String> {
    let strategy: Vec<std::ops::RangeInclusive<i64>> =
        params.iter().map(|p| p.low..=p.high).collect();
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    // The low ends first: the values the suite explores and the expectation is written for.
    // A failure there is already as small as it gets.
    let lows: Vec<i64> = params.iter().map(|p| p.low).collect();
    let first = explore_with(file, src, variant, &values(params, &lows), cfg)?;
    if first
        .outcome
        .as_ref()
        .is_ok_and(|ex| !ex.findings.is_empty())
    {
        let v = first.values.clone();
        return Ok(ParamSearch {
            draws: vec![v.clone()],
            failing_before_shrink: Some(v),
            result: first,
            shrink_steps: 0,
        });
    }
    let mut tried = vec![first.values.clone()];
    let mut last = Some(first);
    for _ in 0..draws.max(1) {
        let mut tree = strategy
            .new_tree(&mut runner)
            .map_err(|e| format!("cannot draw parameters: {e}"))?;
        let drawn = values(params, &tree.current());
        tried.push(drawn.clone());
        let draw = explore_with(file, src, variant, &drawn, cfg)?;
        let target = match &draw.outcome {
            Ok(ex) => ex.findings.first().map(|f| f.invariant.clone()),
            Err(_) => None,
        };
        let Some(target) = target else {
            last = Some(draw);
            continue;
        };
        // Shrink: simplify while the candidate still breaks the target, complicate when not.
        let mut best = draw;
        let mut steps = 0u32;
        let mut progressed = tree.simplify();
        while progressed && steps < 64 {
            steps += 1;
            let candidate =
                explore_with(file, src, variant, &values(params, &tree.current()), cfg)?;
            if broke(&candidate, &target) {
                best = candidate;
                progressed = tree.simplify();
            } else {
                progressed = tree.complicate();
            }
        }
        return Ok(ParamSearch {
            draws: tried,
            failing_before_shrink: Some(drawn),
            result: best,
            shrink_steps: steps,
        });
    }
    let result = last.ok_or("no draw was explored")?;
    Ok(ParamSearch {
        draws: tried,
        result,
        failing_before_shrink: None,
        shrink_steps: 0,
    })
}
