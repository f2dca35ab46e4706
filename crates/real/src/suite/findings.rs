//! The model rows written as soon as they are judged, and read back by a run that forces another
//! run's findings (`--findings-from`) instead of exploring again.

use std::collections::BTreeMap;

use reports::RunResult;

use super::exit_code;
use racelab_core::error::Error;
use racelab_core::lang::Scenario;

/// The model rows of a previous suite's `summary.json` for these scenarios' variants (by the
/// named engines, or all): their
/// findings are the tokens [`real_rows`] forces, so a slow real target (an NFS guest) need not
/// explore again. Tokens carry the scenario's fingerprint, so one recorded against another
/// version of a file is refused when it is forced, as `replay` refuses it. A file that cannot
/// be read or is no summary is bad input.
pub fn model_rows_from(
    path: &std::path::Path,
    scenarios: &[(String, Scenario)],
    engines: &[String],
) -> Result<Vec<RunResult>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::bad_input(format!("cannot read it: {e}")))?;
    let summary: reports::Summary = serde_json::from_str(&text)
        .map_err(|e| Error::bad_input(format!("not a racelab summary.json: {e}")))?;
    Ok(summary
        .results
        .into_iter()
        .filter(|r| r.backend == "model")
        .filter(|r| engines.is_empty() || engines.contains(&r.engine))
        .filter(|r| {
            scenarios.iter().any(|(stem, sc)| {
                *stem == r.scenario && sc.variants.iter().any(|v| v.variant == r.variant)
            })
        })
        .collect())
}

/// The file in a suite's report directory that holds its model rows, written as soon as they
/// are judged, before the real runs start.
pub const MODEL_ROWS_FILE: &str = "model.json";

/// Writes the model rows (a summary.json of them alone) to [`MODEL_ROWS_FILE`] in `dir`, whole
/// or not at all (a temporary file renamed into place). `cargo xtask run-scenarios` starts its
/// NFS part beside the suite; the part waits for this file and forces these findings in its
/// guest (`--findings-from`) instead of exploring the same variants on the host a second time.
pub fn write_model_rows(rows: &[RunResult], dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let summary = reports::Summary {
        ok: exit_code(rows) == 0,
        results: rows.to_vec(),
        shard: None,
    };
    let json = serde_json::to_string(&summary).map_err(std::io::Error::other)?;
    let path = dir.join(MODEL_ROWS_FILE);
    let partial = dir.join(format!("{MODEL_ROWS_FILE}.partial"));
    std::fs::write(&partial, json)?;
    std::fs::rename(&partial, &path)
}

/// One token per invariant the model's engines found broken in this variant: the shortest (by
/// token length), in invariant order. These are what real backends force.
pub(super) fn shortest_tokens(model_rows: &[RunResult], stem: &str, variant: &str) -> Vec<String> {
    let mut by_target: BTreeMap<String, String> = BTreeMap::new();
    for f in model_rows
        .iter()
        .filter(|r| r.scenario == stem && r.variant == variant)
        .flat_map(|r| &r.findings)
    {
        let slot = by_target
            .entry(f.invariant.clone())
            .or_insert_with(|| f.replay.clone());
        if f.replay.len() < slot.len() {
            *slot = f.replay.clone();
        }
    }
    by_target.into_values().collect()
}
