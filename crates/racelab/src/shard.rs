//! Sharding a suite across machines, and merging the shards' summaries back into one.
//!
//! The unit of work is a scenario variant with everything run on it (every engine, every real
//! backend): a variant's rows are judged together (the portfolio), and its real rows force its
//! model findings, so splitting a variant would split what must be judged as one. Variants are
//! numbered in the order the suite lists them (files sorted by name, variants in file order),
//! and shard `I/N` takes those whose number is `I - 1` modulo `N`: deterministic, the same on
//! every machine, and balanced to within one variant.

use reports::{RunResult, Shard, Summary};

use racelab_core::error::Error;
use racelab_core::lang::Scenario;

/// Parses `I/N` (1 <= I <= N); anything else is bad input.
pub fn parse(text: &str) -> Result<Shard, Error> {
    let usage = || {
        Error::bad_input(format!("--shard {text}: expected I/N with 1 <= I <= N, such as --shard 1/2 and --shard 2/2 on two machines"))
    };
    let (i, n) = text.split_once('/').ok_or_else(usage)?;
    let (index, count): (u32, u32) = (
        i.trim().parse().map_err(|_| usage())?,
        n.trim().parse().map_err(|_| usage())?,
    );
    if index == 0 || count == 0 || index > count {
        return Err(usage());
    }
    Ok(Shard { index, count })
}

/// Keeps the variants of `scenarios` that belong to `shard`; scenarios left with none are dropped.
pub fn select(scenarios: Vec<(String, Scenario)>, shard: Shard) -> Vec<(String, Scenario)> {
    let mut position = 0u32;
    let mut out = Vec::new();
    for (stem, mut sc) in scenarios {
        sc.variants.retain(|_| {
            let mine = position % shard.count == shard.index - 1;
            position += 1;
            mine
        });
        if !sc.variants.is_empty() {
            out.push((stem, sc));
        }
    }
    out
}

/// Combines the summaries of shards `1/N` .. `N/N` into the summary of the whole run. Refuses
/// summaries that are not shards, shards of different splits, a shard given twice, a missing
/// shard, and a variant that two shards both ran: each is bad input.
pub fn merge(parts: Vec<(String, Summary)>) -> Result<Summary, Error> {
    merge_shards(parts).map_err(Error::bad_input)
}

fn merge_shards(parts: Vec<(String, Summary)>) -> Result<Summary, String> {
    if parts.is_empty() {
        return Err("nothing to merge: pass the summary.json of every shard".into());
    }
    let mut count = None;
    let mut seen: Vec<Option<String>> = Vec::new();
    for (name, s) in &parts {
        let shard = s.shard.ok_or_else(|| {
            format!("{name} is not the summary of a shard (it was not written with --shard I/N)")
        })?;
        let n = *count.get_or_insert(shard.count);
        if shard.count != n {
            return Err(format!(
                "{name} is shard {}/{}, but the others split the run in {n}",
                shard.index, shard.count
            ));
        }
        seen.resize(n as usize, None);
        let slot = &mut seen[shard.index as usize - 1];
        if let Some(other) = slot {
            return Err(format!(
                "{name} and {other} are both shard {}/{n}",
                shard.index
            ));
        }
        *slot = Some(name.clone());
    }
    let missing: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| format!("{}/{}", i + 1, seen.len()))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing shard {}: merge the summaries of all {} shards",
            missing.join(", "),
            seen.len()
        ));
    }
    let mut owner: std::collections::HashMap<(String, String), &str> =
        std::collections::HashMap::new();
    let mut results: Vec<RunResult> = Vec::new();
    for (name, s) in &parts {
        for r in &s.results {
            let key = (r.scenario.clone(), r.variant.clone());
            match owner.get(&key) {
                Some(other) if *other != name.as_str() => {
                    return Err(format!("{}/{} was run by both {other} and {name}; were they written by the same split?", r.scenario, r.variant));
                }
                _ => {
                    owner.insert(key, name);
                }
            }
        }
        results.extend(s.results.iter().cloned());
    }
    // Each shard judged its own variants' portfolios whole; judging again changes nothing
    // except through a bug, and keeps the merged summary's verdicts computed in one place.
    racelab_real::suite::judge_portfolio(&mut results);
    Ok(Summary {
        ok: racelab_real::suite::exit_code(&results) == 0,
        results,
        shard: None,
    })
}
