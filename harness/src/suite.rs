//! The suite: every scenario × variant × engine, turned into `summary.json` result rows.

use std::sync::Arc;
use std::time::Duration;

use rayon::prelude::*;
use reports::{Finding, Outcome, RunResult, Verdict};

use crate::backend::stress::wilson;
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
    /// Per engine run other than native-dfs on a variant expected to hold. They run only when
    /// native-dfs did not prove it (see [`run`]), and can then only end "not refuted" however
    /// long they search: quick mode gives them a sample, not a search that must find something.
    pub holds_budget: Budget,
    /// Random and PCT seed.
    pub seed: u64,
    pub preemption_bound: usize,
}

impl SuiteConfig {
    /// `--quick`: CI's smoke budget. Measured on CI's last run before the holds budget: the
    /// unproved variants expected to hold cost 340 of the model's 550 row-seconds, six engines
    /// spending 5-8 s each on a verdict none of them can change.
    pub fn quick() -> SuiteConfig {
        SuiteConfig {
            budget: Budget::new(20_000, Duration::from_secs(8)),
            holds_budget: Budget::new(5_000, Duration::from_secs(3)),
            seed: 0x5eed,
            preemption_bound: 2,
        }
    }
    pub fn full() -> SuiteConfig {
        let budget = Budget::new(200_000, Duration::from_secs(60));
        SuiteConfig {
            budget,
            holds_budget: budget,
            seed: 0x5eed,
            preemption_bound: 3,
        }
    }
}

/// One unit of work: a variant under an engine.
pub struct Job {
    pub scenario: String,
    pub prog: Arc<Program>,
    pub config: EngineConfig,
}

pub fn jobs(
    scenarios: &[(String, Scenario)],
    cfg: &SuiteConfig,
    engines: &[EngineKind],
) -> Vec<Job> {
    let mut out = Vec::new();
    for (stem, sc) in scenarios {
        for prog in &sc.variants {
            for &kind in engines {
                // One thread per search: the suite already runs variants on every core, and
                // measured so (quick suite, 2 cores) a parallel proof search got fewer states
                // in its time than a sequential one.
                let expected_to_hold = matches!(prog.expected, Some(Expected::Holds));
                let budget = if expected_to_hold && kind != EngineKind::NativeDfs {
                    cfg.holds_budget
                } else {
                    cfg.budget
                };
                let config = EngineConfig::new(kind, budget)
                    .seed(cfg.seed)
                    .preemption_bound(cfg.preemption_bound)
                    .workers(1);
                out.push(Job {
                    scenario: stem.clone(),
                    prog: Arc::new(prog.clone()),
                    config,
                });
            }
        }
    }
    out
}

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
            |f: &str| r.expected == Verdict::Deadlock && f == crate::ir::oracle::LOCK_ORDER;
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

/// Turns one exploration into a `summary.json` row, judged against the variant's expectation.
pub fn result_row(
    stem: &str,
    prog: &Arc<Program>,
    cfg: &EngineConfig,
    outcome: Result<Exploration, Refusal>,
) -> RunResult {
    let (expected, expected_invariants) = verdict_of(prog.expected.as_ref());
    let mut row = RunResult {
        scenario: stem.to_string(),
        variant: prog.variant.clone(),
        engine: cfg.kind.name().to_string(),
        backend: "model".to_string(),
        faults: (!prog.faults.is_empty()).then(|| {
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
        }),
        expected,
        expected_invariants: expected_invariants.clone(),
        outcome: Outcome::Error,
        invariant: None,
        exhaustive: false,
        coverage: None,
        covers: None,
        assumptions: vec![],
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
        env: prog.isolation_levels().map(|level| reports::Env {
            isolation_level: Some(level),
            ..Default::default()
        }),
        bound: Some(cfg.describe_bound()),
        states: None,
        reason: None,
        trace: None,
        proved_by: None,
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
    let (coverage, covers) = crate::coverage::of_exploration(cfg, &ex);
    row.coverage = Some(coverage);
    row.covers = Some(covers);
    row.assumptions = crate::coverage::model_assumptions(prog);
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
        row.outcome = if f.invariant == crate::ir::oracle::DEADLOCK {
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
            found.contains(&crate::ir::oracle::DEADLOCK)
                && found.iter().all(|f| {
                    *f == crate::ir::oracle::DEADLOCK || collect::tolerated(&prog.expected, f)
                })
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
    if results
        .iter()
        .any(|r| r.outcome != Outcome::Skipped && !r.met)
    {
        return 1;
    }
    0
}

/// A stress campaign as a `summary.json` row: the rate of the primary expected invariant (or of
/// the first one that broke), every invariant's rate in `rates`, the filesystem in `env`.
/// Met when every expected violation was seen at least once (a race seen once is real), or,
/// for a variant expected to hold, when nothing broke.
pub fn stress_row(
    stem: &str,
    prog: &Arc<Program>,
    r: &crate::backend::stress::StressResult,
    backend: &str,
    root: &std::path::Path,
) -> RunResult {
    let (expected, expected_invariants) =
        verdict_of(prog.expected_real.as_ref().or(prog.expected.as_ref()));
    let hit: Vec<&crate::backend::stress::InvariantRate> =
        r.rates.iter().filter(|x| x.hits > 0).collect();
    let primary = r
        .rates
        .iter()
        .find(|x| expected_invariants.contains(&x.invariant) && x.hits > 0)
        .or(hit.first().copied());
    // Free runs can refute `holds` (a real system broke what the model proved), never a
    // violation: the model established it and forced replay reproduces it; stress measures how
    // often the kernel's own scheduling hits it.
    let met = match expected {
        Verdict::Holds => hit.is_empty(),
        _ => true,
    };
    let unseen: Vec<&String> = expected_invariants
        .iter()
        .filter(|e| !hit.iter().any(|h| &h.invariant == *e))
        .collect();
    let reason = (!unseen.is_empty() && expected != Verdict::Holds).then(|| {
        let upper = wilson(0, r.runs).1 * 100.0;
        format!(
            "not seen in {} free runs: {} (each below {upper:.1}% per run at 95% confidence); stress measures rates, forced replay reproduces",
            r.runs,
            unseen.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )
    });
    let shown = primary.or_else(|| {
        r.rates
            .iter()
            .find(|x| expected_invariants.contains(&x.invariant))
    });
    RunResult {
        scenario: stem.to_string(),
        variant: prog.variant.clone(),
        engine: if r.chaos {
            "stress-chaos".into()
        } else {
            "stress".into()
        },
        backend: format!("fs:{backend}"),
        faults: (!prog.faults.is_empty()).then(|| nemesis_faults(prog, r)),
        expected,
        expected_invariants,
        outcome: match primary {
            Some(p) if p.invariant == crate::ir::oracle::DEADLOCK => Outcome::Deadlock,
            Some(_) => Outcome::Violation,
            None => Outcome::Holds,
        },
        invariant: primary.map(|p| p.invariant.clone()),
        exhaustive: false,
        coverage: Some(reports::Coverage::Budget),
        covers: Some(format!(
            "{} free runs{}",
            r.runs,
            if r.nemesis_seed.is_some() {
                " with the nemesis"
            } else {
                ""
            }
        )),
        assumptions: vec![],
        schedules: r.runs,
        seconds: r.seconds,
        first_failure_after: r.first_failure.as_ref().map(|(i, _, _)| i + 1),
        replay: r.first_failure.as_ref().map(|(_, s, _)| s.encode()),
        met,
        findings: vec![],
        switches: r.first_failure.as_ref().map(|(_, s, _)| s.switches()),
        shrunk_switches: None,
        rate: shown.map(|p| reports::Rate {
            hits: p.hits,
            runs: p.runs,
            low: p.low,
            high: p.high,
        }),
        rates: r
            .rates
            .iter()
            .map(|x| reports::InvariantRate {
                invariant: x.invariant.clone(),
                hits: x.hits,
                runs: x.runs,
                low: x.low,
                high: x.high,
            })
            .collect(),
        divergence: None,
        env: Some(reports::Env {
            fs_type: Some(r.env.fs_type.clone()),
            mount_options: Some(r.env.options.clone()),
            ..Default::default()
        }),
        bound: Some(format!(
            "{} free-running runs with {} actors{} in {}",
            r.runs,
            r.mode.name(),
            if r.chaos { " and chaos" } else { "" },
            root.display()
        )),
        states: None,
        reason,
        trace: r.first_failure.as_ref().map(|(_, _, t)| t.clone()),
        proved_by: None,
    }
}

/// `coverage` and `covers` of runs on a real system, as the row fields take them.
fn real_coverage(runs: u64, what: &str) -> (Option<reports::Coverage>, Option<String>) {
    let (c, text) = crate::coverage::of_real_runs(runs, what);
    (Some(c), Some(text))
}

/// A stress row's `faults`: the nemesis's seed, the budget, and how many runs each fault landed in.
fn nemesis_faults(prog: &Program, r: &crate::backend::stress::StressResult) -> String {
    let Some(seed) = r.nemesis_seed else {
        return "not injected in these stress runs (--no-nemesis)".to_string();
    };
    let landed: Vec<String> = r
        .landed
        .iter()
        .map(|(name, n)| format!("{name} in {n}/{}", r.runs))
        .collect();
    format!(
        "nemesis (seed {seed:#x}; run i draws from seed+i): at most {} per run, each at a random step boundary; landed: {}",
        prog.fault_budget,
        landed.join(", ")
    )
}

/// A real filesystem the suite runs on: a name for reports and a writable directory, or the
/// reason it is not available (reported as a skipped row, never as a pass).
#[derive(Debug, Clone)]
pub struct RealFsTarget {
    pub name: String,
    /// One directory, or several: the same export through different NFS clients.
    pub dir: Result<Vec<std::path::PathBuf>, String>,
}

/// How hard the suite works real filesystems.
#[derive(Debug, Clone, Copy)]
pub struct RealConfig {
    /// Forced replays per token.
    pub replays: u32,
    /// Stress runs per variant, with and without chaos.
    pub stress_runs: u64,
    pub jobs: usize,
}

/// True for variants a real filesystem backend can run: they use the filesystem and no
/// database (real databases are another backend).
pub fn runs_on_real_fs(prog: &Program) -> bool {
    let ops = || {
        prog.procs
            .iter()
            .flat_map(|p| &p.code)
            .filter_map(|i| match i {
                crate::ir::Instr::Op { op, .. } => Some(*op),
                _ => None,
            })
    };
    ops().any(crate::ir::Op::is_filesystem)
        && !ops().any(|o| matches!(o, crate::ir::Op::Sql(_)))
        && prog.database.is_none()
}

/// The model rows of a previous suite's `summary.json` for these scenarios' variants (by the
/// named engines, or all): their
/// findings are the tokens [`real_rows`] forces, so a slow real target (an NFS guest) need not
/// explore again. Tokens carry the scenario's fingerprint, so one recorded against another
/// version of a file is refused when it is forced, as `replay` refuses it.
pub fn model_rows_from(
    path: &std::path::Path,
    scenarios: &[(String, Scenario)],
    engines: &[String],
) -> Result<Vec<RunResult>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let summary: reports::Summary =
        serde_json::from_str(&text).map_err(|e| format!("not a racelab summary.json: {e}"))?;
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

/// Rows for real filesystems: every model finding of a variant forced on each target with
/// process actors (`forced-replay`), and stress runs with and without chaos.
pub fn real_rows(
    scenarios: &[(String, Scenario)],
    model_rows: &[RunResult],
    targets: &[RealFsTarget],
    cfg: &RealConfig,
    progress: &(dyn Fn(&RunResult) + Sync),
) -> Vec<RunResult> {
    let mut rows = Vec::new();
    for (stem, sc) in scenarios {
        for prog in sc.variants.iter().filter(|p| runs_on_real_fs(p)) {
            let prog = Arc::new(prog.clone());
            // One token per invariant the model's engines found broken: the shortest.
            let mut by_target: std::collections::BTreeMap<String, String> =
                std::collections::BTreeMap::new();
            for f in model_rows
                .iter()
                .filter(|r| &r.scenario == stem && r.variant == prog.variant)
                .flat_map(|r| &r.findings)
            {
                let slot = by_target
                    .entry(f.invariant.clone())
                    .or_insert_with(|| f.replay.clone());
                if f.replay.len() < slot.len() {
                    *slot = f.replay.clone();
                }
            }
            let tokens: Vec<String> = by_target.into_values().collect();
            for t in targets {
                if crate::backend::cancel::requested().is_some() {
                    return rows;
                }
                let dir = match &t.dir {
                    Ok(d) => d,
                    Err(why) => {
                        let row = skipped_row(stem, &prog, "forced-replay", &t.name, why);
                        progress(&row);
                        rows.push(row);
                        continue;
                    }
                };
                if let Some(why) = model_only_reason(&prog, dir) {
                    let row = skipped_row(stem, &prog, "forced-replay", &t.name, &why);
                    progress(&row);
                    rows.push(row);
                    continue;
                }
                for token in &tokens {
                    let row = forced_row(stem, &prog, token, &t.name, dir, cfg.replays);
                    progress(&row);
                    rows.push(row);
                }
                // The variant's faults happen for real at random moments (the nemesis).
                let nemesis = prog
                    .faults
                    .iter()
                    .any(|f| crate::backend::nemesis::injectable(&f.kind));
                for chaos in [false, true] {
                    let sc = crate::backend::stress::StressConfig {
                        runs: cfg.stress_runs,
                        chaos,
                        mode: crate::backend::ActorMode::Processes,
                        jobs: cfg.jobs,
                        seed: 0x5eed,
                        nemesis,
                    };
                    let row = match crate::backend::stress::stress(&prog, dir, &sc, &|_| {}) {
                        Ok(r) => stress_row(stem, &prog, &r, &t.name, &dir[0]),
                        Err(why) => error_row(
                            stem,
                            &prog,
                            if chaos { "stress-chaos" } else { "stress" },
                            &t.name,
                            &why,
                        ),
                    };
                    progress(&row);
                    rows.push(row);
                }
            }
        }
    }
    rows
}

/// Why a variant says nothing about this real target: it models NFS client caches and the
/// target is local (one cache: it would diverge by design), or it injects a fault only the
/// model can (a lost reply).
fn model_only_reason(prog: &Program, dirs: &[std::path::PathBuf]) -> Option<String> {
    if prog
        .faults
        .iter()
        .any(|f| matches!(f.kind, crate::ir::FaultKind::Retransmit))
    {
        return Some(
            "the variant loses an NFS reply (`retransmit`), which only the model can do".into(),
        );
    }
    if prog.nfs_cache_ms.is_some() {
        let fs = dirs
            .first()
            .and_then(|d| crate::backend::fsinfo::fs_info(d).ok())
            .map(|i| i.fs_type)
            .unwrap_or_default();
        if !fs.starts_with("nfs") || dirs.len() < 2 {
            return Some(format!(
                "the variant models two NFS clients' caches; this target is {} with {} mount(s)",
                if fs.is_empty() { "unknown" } else { &fs },
                dirs.len()
            ));
        }
    } else if dirs.len() > 1 {
        // Two clients with their own caches are not a POSIX filesystem: the POSIX model's
        // schedules diverge there by design (see nfs-two-clients.race and its test).
        return Some("the variant models one POSIX filesystem; this target is two NFS clients with their own caches, where the POSIX model diverges by design (nfs-two-clients.race models them)".into());
    }
    None
}

pub fn base_row(stem: &str, prog: &Program, engine: &str, backend: &str) -> RunResult {
    let (expected, expected_invariants) =
        verdict_of(prog.expected_real.as_ref().or(prog.expected.as_ref()));
    RunResult {
        scenario: stem.to_string(),
        variant: prog.variant.clone(),
        engine: engine.to_string(),
        backend: format!("fs:{backend}"),
        faults: None,
        expected,
        expected_invariants,
        outcome: Outcome::Error,
        invariant: None,
        exhaustive: false,
        coverage: None,
        covers: None,
        assumptions: vec![],
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
        bound: None,
        states: None,
        reason: None,
        trace: None,
        proved_by: None,
    }
}

fn skipped_row(stem: &str, prog: &Program, engine: &str, backend: &str, why: &str) -> RunResult {
    RunResult {
        outcome: Outcome::Skipped,
        reason: Some(why.to_string()),
        ..base_row(stem, prog, engine, backend)
    }
}

fn error_row(stem: &str, prog: &Program, engine: &str, backend: &str, why: &str) -> RunResult {
    RunResult {
        outcome: Outcome::Error,
        reason: Some(format!("the real backend failed: {why}")),
        ..base_row(stem, prog, engine, backend)
    }
}

/// Forces `token` `times` times on `dir` with process actors. Met when every replay broke the
/// token's target with no divergence from the model.
fn forced_row(
    stem: &str,
    prog: &Arc<Program>,
    token: &str,
    backend: &str,
    dir: &[std::path::PathBuf],
    times: u32,
) -> RunResult {
    let mut row = base_row(stem, prog, "forced-replay", backend);
    let sched = match crate::schedule::Schedule::decode(token) {
        Ok(s) => s,
        Err(e) => return error_row(stem, prog, "forced-replay", backend, &e.to_string()),
    };
    let start = std::time::Instant::now();
    let mut hits = 0u64;
    let mut runs = 0u64;
    // One process per actor for all the replays, reset between them, not one per replay.
    let _reuse = crate::backend::process::Reuse::here();
    for _ in 0..times.max(1) {
        match crate::backend::forced::forced_replay(
            prog,
            &sched,
            dir,
            crate::backend::ActorMode::Processes,
        ) {
            Ok(r) => {
                runs += 1;
                row.env = Some(reports::Env {
                    fs_type: Some(r.env.fs_type.clone()),
                    mount_options: Some(r.env.options.clone()),
                    ..Default::default()
                });
                if let Some(d) = r.divergence {
                    row.divergence = Some(reports::Divergence {
                        step: d.step,
                        actor: d.actor,
                        operation: d.operation,
                        model: d.model,
                        real: d.real,
                    });
                    row.trace = Some(r.trace);
                    break;
                }
                if r.reproduced(&sched) {
                    hits += 1;
                    row.trace.get_or_insert(r.trace);
                }
            }
            Err(e) => return error_row(stem, prog, "forced-replay", backend, &e.to_string()),
        }
    }
    let (low, high) = crate::backend::stress::wilson(hits, runs);
    row.rate = Some(reports::Rate {
        hits,
        runs,
        low,
        high,
    });
    row.seconds = start.elapsed().as_secs_f64();
    row.schedules = runs;
    row.invariant = sched.target.clone();
    row.replay = Some(token.to_string());
    row.switches = Some(sched.switches());
    row.bound = Some(format!(
        "{} forced replays of the model's token with process actors",
        times.max(1)
    ));
    (row.coverage, row.covers) = real_coverage(runs, "forced replays of one schedule");
    let all = hits == runs && row.divergence.is_none();
    row.outcome = match (&row.divergence, sched.target.as_deref()) {
        (Some(_), _) => Outcome::Holds,
        (None, Some(crate::ir::oracle::DEADLOCK)) if hits > 0 => Outcome::Deadlock,
        (None, _) if hits > 0 => Outcome::Violation,
        _ => Outcome::Holds,
    };
    // A variant without the NFS client model claims what a POSIX filesystem does. On NFS a
    // divergence shows where NFS is not POSIX (silly rename keeps an open file's last name, so
    // a two-step stat sees nlink 1 where POSIX says 0): recorded, not judged, as a PostgreSQL
    // variant's divergence on MariaDB is. The `nfs-*` variants carry the claims about NFS.
    let posix_on_nfs = prog.nfs_cache_ms.is_none()
        && row
            .env
            .as_ref()
            .and_then(|e| e.fs_type.as_deref())
            .is_some_and(|t| t.starts_with("nfs"));
    row.met = (all || (posix_on_nfs && row.divergence.is_some())) && row.expected != Verdict::Holds;
    row.reason = Some(if let Some(d) = &row.divergence {
        let note = if posix_on_nfs {
            "; the variant models a POSIX filesystem and NFS is not one here: recorded, not judged"
        } else {
            ""
        };
        format!(
            "diverged from the model at step {} ({}: {}): model {}, real {}{note}",
            d.step, d.actor, d.operation, d.model, d.real
        )
    } else {
        format!(
            "{} reproduced in {hits} of {runs} forced replays",
            sched.target.as_deref().unwrap_or("the violation")
        )
    });
    row
}

/// A real database the suite runs the database scenarios on, or why it is not available
/// (reported as skipped rows, never as a pass).
#[derive(Debug, Clone)]
pub struct RealDbTarget {
    /// `sqlite`, `postgres`, `mariadb`.
    pub name: String,
    pub spec: Result<crate::backend::db::DbSpec, String>,
}

/// Whether the model's rules for `prog`'s database are those of `spec`'s server: only then is a
/// divergence a failed expectation. Elsewhere (patchwork-person's PostgreSQL rules on MariaDB or
/// SQLite) a divergence is what the other server does differently, recorded, not judged.
fn same_rules(prog: &Program, spec: &crate::backend::db::DbSpec) -> bool {
    use crate::backend::db::DbSpec;
    use crate::model::db::Flavour;
    matches!(
        (prog.database.as_ref().map(|d| d.flavour), spec),
        (Some(Flavour::Postgres), DbSpec::Postgres(_))
            | (Some(Flavour::InnoDb), DbSpec::MariaDb(_))
            | (Some(Flavour::Sqlite), DbSpec::Sqlite)
    )
}

fn db_env(info: &crate::backend::db::DbInfo) -> reports::Env {
    reports::Env {
        server_version: Some(info.server_version.clone()),
        isolation_level: Some(info.isolation_level.clone()),
        ..Default::default()
    }
}

/// A stress campaign on a real database as a report row (judged like filesystem stress rows:
/// it can refute `holds`, never a violation).
pub fn db_stress_row(
    stem: &str,
    prog: &Arc<Program>,
    r: &crate::backend::db::stress::DbStress,
) -> RunResult {
    let mut row = base_row(stem, prog, "stress", "");
    row.backend = r.info.backend.clone();
    let hit: Vec<&crate::backend::stress::InvariantRate> =
        r.rates.iter().filter(|x| x.hits > 0).collect();
    let primary = r
        .rates
        .iter()
        .find(|x| row.expected_invariants.contains(&x.invariant) && x.hits > 0)
        .or(hit.first().copied());
    // A variant written for InnoDB or SQLite (`database innodb` / `database sqlite`: its SQL and
    // its expectation are that server's) that breaks on another server records what that server
    // does; it is not judged there, as its forced replays are not.
    let (foreign, own) = match prog.database.as_ref().map(|d| d.flavour) {
        Some(crate::model::db::Flavour::InnoDb) => (r.info.backend != "db:mariadb", "InnoDB's"),
        Some(crate::model::db::Flavour::Sqlite) => (r.info.backend != "db:sqlite", "SQLite's"),
        _ => (false, ""),
    };
    row.met = match row.expected {
        Verdict::Holds => hit.is_empty() || foreign,
        _ => true,
    };
    if foreign && !hit.is_empty() && row.expected == Verdict::Holds {
        row.reason = Some(format!("the variant follows {own} rules and its SQL is written for that server; {} breaks it in free runs: recorded, not judged", r.info.backend));
    }
    row.outcome = match primary {
        Some(p) if p.invariant == crate::ir::oracle::DEADLOCK => Outcome::Deadlock,
        Some(_) => Outcome::Violation,
        None => Outcome::Holds,
    };
    row.invariant = primary.map(|p| p.invariant.clone());
    row.schedules = r.runs;
    row.seconds = r.seconds;
    row.first_failure_after = r.first_failure.as_ref().map(|(i, _, _)| i + 1);
    row.replay = r.first_failure.as_ref().map(|(_, s, _)| s.encode());
    row.switches = r.first_failure.as_ref().map(|(_, s, _)| s.switches());
    let shown = primary.or_else(|| {
        r.rates
            .iter()
            .find(|x| row.expected_invariants.contains(&x.invariant))
    });
    row.rate = shown.map(|p| reports::Rate {
        hits: p.hits,
        runs: p.runs,
        low: p.low,
        high: p.high,
    });
    row.rates = r
        .rates
        .iter()
        .map(|x| reports::InvariantRate {
            invariant: x.invariant.clone(),
            hits: x.hits,
            runs: x.runs,
            low: x.low,
            high: x.high,
        })
        .collect();
    row.env = Some(db_env(&r.info));
    row.bound = Some(format!(
        "{} free-running runs, {} actors each on its own connection",
        r.runs,
        prog.actors.len()
    ));
    (row.coverage, row.covers) = real_coverage(r.runs, "free runs");
    row.trace = r.first_failure.as_ref().map(|(_, _, t)| t.clone());
    row
}

/// Forces `sched` `times` times on a real database. With a target (a model finding): met when
/// every replay broke it with no divergence. Without (a variant expected to hold): met when no
/// replay broke anything or diverged.
fn db_forced_row(
    stem: &str,
    prog: &Arc<Program>,
    sched: &crate::schedule::Schedule,
    name: &str,
    spec: &crate::backend::db::DbSpec,
    times: u32,
) -> RunResult {
    let mut row = base_row(stem, prog, "forced-replay", "");
    row.backend = spec.name().to_string();
    let start = std::time::Instant::now();
    let (mut hits, mut runs) = (0u64, 0u64);
    let mut replayer = crate::backend::db::forced::DbReplayer::new(spec);
    for _ in 0..times.max(1) {
        match replayer.replay(prog, sched) {
            Ok(r) => {
                runs += 1;
                row.env = Some(db_env(&r.info));
                if let Some(d) = r.divergence {
                    row.divergence = Some(reports::Divergence {
                        step: d.step,
                        actor: d.actor,
                        operation: d.operation,
                        model: d.model,
                        real: d.real,
                    });
                    row.trace = Some(r.trace);
                    break;
                }
                let broke = match &sched.target {
                    Some(t) => r.broken.iter().any(|b| &b.invariant == t),
                    None => !r.broken.is_empty(),
                };
                if broke {
                    hits += 1;
                    row.invariant = r.broken.first().map(|b| b.invariant.clone());
                    row.trace.get_or_insert(r.trace);
                }
            }
            Err(e) => {
                return RunResult {
                    backend: spec.name().to_string(),
                    ..error_row(stem, prog, "forced-replay", name, &e.to_string())
                }
            }
        }
    }
    let (low, high) = crate::backend::stress::wilson(hits, runs);
    row.rate = Some(reports::Rate {
        hits,
        runs,
        low,
        high,
    });
    row.seconds = start.elapsed().as_secs_f64();
    row.schedules = runs;
    row.replay = Some(sched.encode());
    row.switches = Some(sched.switches());
    row.bound = Some(format!(
        "{} forced replays, one statement per step, each actor on its own connection",
        times.max(1)
    ));
    (row.coverage, row.covers) = real_coverage(runs, "forced replays of one schedule");
    row.outcome = match (&row.divergence, hits) {
        (Some(_), _) => Outcome::Holds,
        (None, 0) => Outcome::Holds,
        (None, _) if sched.target.as_deref() == Some(crate::ir::oracle::DEADLOCK) => {
            Outcome::Deadlock
        }
        _ => Outcome::Violation,
    };
    let judged = same_rules(prog, spec);
    row.met = match (&row.divergence, &sched.target) {
        (Some(_), _) => !judged,
        (None, Some(_)) => hits == runs && row.expected != Verdict::Holds,
        (None, None) => hits == 0,
    };
    row.reason = Some(match &row.divergence {
        Some(d) if !judged => format!(
            "diverged from the model at step {} ({}: {}): model {}, real {}; the model follows another server's rules here, so this records what {} does differently (not judged)",
            d.step, d.actor, d.operation, d.model, d.real, spec.name()
        ),
        Some(d) => format!("diverged from the model at step {} ({}: {}): model {}, real {}", d.step, d.actor, d.operation, d.model, d.real),
        None => match &sched.target {
            Some(t) => format!("{t} reproduced in {hits} of {runs} forced replays"),
            None => format!("a schedule of the model ({} steps, {} switches) broke nothing in {runs} forced replays; {hits} broke something", sched.steps.len(), sched.switches()),
        },
    });
    row
}

/// Whole schedules of the model for a variant that should hold: round robin (every actor's
/// first statements before anyone's second, the window of a check-then-act race) and a few
/// drawn at random, so forced replay has interleavings to try where exploring found nothing.
pub fn model_schedules(prog: &Arc<Program>, random: usize) -> Vec<crate::schedule::Schedule> {
    let mut out = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for k in 0..=random {
        let mut m = crate::model::Machine::new(Arc::clone(prog));
        let mut steps = Vec::new();
        let mut turn = 0usize;
        while !m.is_finished() && steps.len() < 10_000 {
            let runnable: Vec<usize> = (0..prog.actors.len())
                .filter(|&a| m.is_runnable(a))
                .collect();
            if runnable.is_empty() {
                break;
            }
            let i = if k == 0 {
                turn += 1;
                turn
            } else {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as usize
            };
            let a = runnable[i % runnable.len()];
            m.step(a);
            steps.push(a as u8);
        }
        let s = crate::schedule::Schedule::of(prog, None, steps);
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// Rows for real databases: every variant that declares a database, on every target. The model's
/// findings are forced statement by statement; a variant expected to hold is forced along a few
/// of the model's schedules; and every variant is stress-run.
pub fn db_rows(
    scenarios: &[(String, Scenario)],
    model_rows: &[RunResult],
    targets: &[RealDbTarget],
    cfg: &RealConfig,
    progress: &(dyn Fn(&RunResult) + Sync),
) -> Vec<RunResult> {
    let mut rows = Vec::new();
    let push = |row: RunResult, rows: &mut Vec<RunResult>| {
        progress(&row);
        rows.push(row);
    };
    for (stem, sc) in scenarios {
        for prog in sc.variants.iter().filter(|p| p.database.is_some()) {
            let prog = Arc::new(prog.clone());
            let mut by_target: std::collections::BTreeMap<String, String> =
                std::collections::BTreeMap::new();
            for f in model_rows
                .iter()
                .filter(|r| &r.scenario == stem && r.variant == prog.variant)
                .flat_map(|r| &r.findings)
            {
                let slot = by_target
                    .entry(f.invariant.clone())
                    .or_insert_with(|| f.replay.clone());
                if f.replay.len() < slot.len() {
                    *slot = f.replay.clone();
                }
            }
            let mut scheds: Vec<crate::schedule::Schedule> = by_target
                .values()
                .filter_map(|t| crate::schedule::Schedule::decode(t).ok())
                .collect();
            if scheds.is_empty() {
                scheds = model_schedules(&prog, 3);
            }
            for t in targets {
                if crate::backend::cancel::requested().is_some() {
                    return rows;
                }
                let spec = match &t.spec {
                    Ok(s) => s,
                    Err(why) => {
                        for engine in ["forced-replay", "stress"] {
                            let row = RunResult {
                                backend: format!("db:{}", t.name),
                                ..skipped_row(stem, &prog, engine, &t.name, why)
                            };
                            push(row, &mut rows);
                        }
                        continue;
                    }
                };
                if let Err(why) = spec.supports(&prog) {
                    for engine in ["forced-replay", "stress"] {
                        push(
                            RunResult {
                                backend: spec.name().to_string(),
                                ..skipped_row(stem, &prog, engine, &t.name, &why)
                            },
                            &mut rows,
                        );
                    }
                    continue;
                }
                for sched in &scheds {
                    push(
                        db_forced_row(stem, &prog, sched, &t.name, spec, cfg.replays),
                        &mut rows,
                    );
                }
                let row = match crate::backend::db::stress::stress(
                    &prog,
                    spec,
                    cfg.stress_runs,
                    cfg.jobs,
                    0x5eed,
                ) {
                    Ok(r) => db_stress_row(stem, &prog, &r),
                    Err(why) => RunResult {
                        backend: spec.name().to_string(),
                        ..error_row(stem, &prog, "stress", &t.name, &why)
                    },
                };
                push(row, &mut rows);
            }
        }
    }
    rows
}

/// An expectation as `summary.json` states it: the verdict and the invariants it names.
fn verdict_of(expected: Option<&Expected>) -> (Verdict, Vec<String>) {
    match expected {
        Some(Expected::Violates(names)) => (Verdict::Violation, names.clone()),
        Some(Expected::Deadlock) => (
            Verdict::Deadlock,
            vec![crate::ir::oracle::DEADLOCK.to_string()],
        ),
        Some(Expected::Holds) | None => (Verdict::Holds, vec![]),
    }
}
