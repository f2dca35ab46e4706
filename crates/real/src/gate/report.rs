//! Gate explorations as `summary.json` rows, judged like the model's: the same findings,
//! tokens, shrunk interleavings and step tables.

use reports::{Finding, Outcome, RunResult, Trace, Verdict};

use super::explore::{explore, shrink, GateBudget, Strategy};
use super::run::GateOptions;
use racelab_lang::ir::Program;

/// The most real executions spent shrinking one finding.
pub(crate) const SHRINK_ATTEMPTS: usize = 30;

/// `gate:tmpfs`, `gate:ext4`, `gate:nfs4`: the gate and the filesystem its runs were on.
pub(crate) fn backend_name(opts: &GateOptions) -> String {
    match crate::backend::fsinfo::fs_info(&opts.base) {
        Ok(fs) => format!("gate:{}", fs.fs_type),
        Err(_) => "gate".to_string(),
    }
}

/// Explores `prog` through the gate and makes its row.
#[allow(clippy::too_many_arguments)]
pub fn explore_row(
    stem: &str,
    prog: &Program,
    opts: &GateOptions,
    strategy: Strategy,
    budget: GateBudget,
    seed: u64,
    progress: &mut dyn FnMut(u64, usize),
) -> RunResult {
    let mut row = crate::suite::base_row(stem, prog, strategy.engine_name(), "");
    row.backend = backend_name(opts);
    row.faults = (!prog.faults.is_empty()).then(|| prog.fault_budget.to_string());
    row.bound = Some(format!(
        "{} executions or {}s, ticks of {} ms",
        budget.executions,
        budget.seconds,
        opts.tick_ns / 1_000_000
    ));
    let want = row.expected_invariants.clone();
    let ex = match explore(prog, opts, strategy, budget, &want, seed, progress) {
        Ok(ex) => ex,
        Err(why) => {
            match why.kind() {
                racelab_core::error::ErrorKind::Skipped => {
                    row.outcome = Outcome::Skipped;
                    row.reason = Some(format!("the program cannot run here: {why}"));
                }
                _ => {
                    row.outcome = Outcome::Error;
                    row.reason = Some(format!("the gate could not run the program: {why}"));
                }
            }
            return row;
        }
    };
    row.schedules = ex.executions;
    row.seconds = ex.seconds;
    let (coverage, covers) =
        racelab_core::coverage::of_real_runs(ex.executions, "gated executions of the real program");
    row.coverage = Some(coverage);
    row.covers = Some(covers);
    let mut findings = ex.findings;
    // Every real execution costs a fraction of a second: shrink the finding the report leads
    // with; the others keep their schedules as found (their shrunk count says so).
    let lead = findings
        .iter()
        .position(|f| want.contains(&f.invariant))
        .or((!findings.is_empty()).then_some(0));
    if let Some(i) = lead {
        shrink(prog, opts, &mut findings[i], SHRINK_ATTEMPTS);
    }
    row.findings = findings
        .iter()
        .map(|f| Finding {
            invariant: f.invariant.clone(),
            replay: f.shrunk.encode(),
            original: f.original.encode(),
            after: f.after,
            switches: f.original_switches,
            shrunk_switches: f.shrunk_switches(),
        })
        .collect();
    let found: Vec<&str> = row.findings.iter().map(|f| f.invariant.as_str()).collect();
    let primary = findings
        .iter()
        .position(|f| want.contains(&f.invariant))
        .or((!findings.is_empty()).then_some(0));
    match primary {
        Some(i) => {
            let f = &findings[i];
            row.outcome = Outcome::Violation;
            row.invariant = Some(f.invariant.clone());
            row.first_failure_after = findings.iter().map(|f| f.after).min();
            row.replay = Some(row.findings[i].replay.clone());
            row.switches = Some(row.findings[i].switches);
            row.shrunk_switches = Some(row.findings[i].shrunk_switches);
            // The table ends where the invariant broke.
            let upto = f
                .execution
                .broken
                .iter()
                .find(|b| b.invariant == f.invariant)
                .map_or(f.execution.trace.len(), |b| b.steps);
            let verdict = f
                .execution
                .broken
                .iter()
                .filter(|b| b.steps <= upto)
                .map(|b| b.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            let steps = f.execution.trace[..upto.min(f.execution.trace.len())].to_vec();
            row.trace = Some(Trace {
                scenario: prog.scenario.clone(),
                variant: prog.variant.clone(),
                actors: prog.actors.iter().map(|a| a.name.to_string()).collect(),
                steps,
                verdict,
            });
        }
        None => row.outcome = Outcome::Holds,
    }
    let unexpected: Vec<&&str> = found
        .iter()
        .filter(|f| !want.iter().any(|w| w == **f))
        .collect();
    row.met = match row.expected {
        Verdict::Holds => found.is_empty(),
        _ => unexpected.is_empty() && !found.is_empty(),
    };
    let unseen: Vec<&String> = want
        .iter()
        .filter(|w| !found.contains(&w.as_str()))
        .collect();
    if row.expected != Verdict::Holds && !unseen.is_empty() {
        row.reason = Some(format!(
            "not seen through the gate within {} executions: {}",
            ex.executions,
            unseen
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    row
}

/// A directory the suite runs gated programs on, or why there is none (a skipped row).
#[derive(Debug, Clone)]
pub struct GateTarget {
    pub name: String,
    pub dir: Result<std::path::PathBuf, String>,
    /// The same directory through other clients (`--gate NAME=DIR,DIR2`): see
    /// [`GateOptions::clients`].
    pub clients: Vec<std::path::PathBuf>,
}

/// Rows for every variant with a `gate` command, on every target: gate-random exploration of
/// the real program, judged against the variant's expectation.
pub fn suite_rows(
    scenarios: &[(String, std::path::PathBuf, racelab_core::lang::Scenario)],
    targets: &[GateTarget],
    (budget, holds_budget): (GateBudget, GateBudget),
    seed: u64,
    progress: &dyn Fn(&RunResult),
) -> Vec<RunResult> {
    let mut rows = Vec::new();
    for (stem, file, sc) in scenarios {
        for prog in sc.variants.iter().filter(|p| p.gate.is_some()) {
            for t in targets {
                let row = match &t.dir {
                    Err(why) => {
                        let mut r =
                            crate::suite::base_row(stem, prog, Strategy::Random.engine_name(), "");
                        r.backend = format!("gate:{}", t.name);
                        r.outcome = Outcome::Skipped;
                        r.reason = Some(why.clone());
                        r
                    }
                    Ok(dir) => match GateOptions::new(file, dir) {
                        Ok(mut opts) => {
                            opts.clients.clone_from(&t.clients);
                            let expects_holds =
                                matches!(prog.expected, Some(racelab_lang::ir::Expected::Holds));
                            let mut r = explore_row(
                                stem,
                                prog,
                                &opts,
                                Strategy::Random,
                                if expects_holds { holds_budget } else { budget },
                                seed,
                                &mut |_, _| {},
                            );
                            r.backend = format!("gate:{}", t.name);
                            r
                        }
                        Err(why) => {
                            let mut r = crate::suite::base_row(
                                stem,
                                prog,
                                Strategy::Random.engine_name(),
                                "",
                            );
                            r.backend = format!("gate:{}", t.name);
                            r.reason = Some(why);
                            r
                        }
                    },
                };
                progress(&row);
                rows.push(row);
                if crate::backend::cancel::requested().is_some() {
                    return rows;
                }
            }
        }
    }
    rows
}
