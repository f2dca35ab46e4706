//! Rows for real filesystems: every model finding forced with process actors, and stress runs
//! with and without chaos (and the nemesis making the variant's faults real).

use std::sync::Arc;

use reports::{Outcome, RunResult, Verdict};

use super::findings::shortest_tokens;
use super::row::{
    base_row, divergence_of, error_row, forced_rate, rate_of, rates_of, real_coverage, skipped_row,
};
use crate::backend::stress::{wilson, InvariantRate};
use racelab_core::lang::Scenario;
use racelab_lang::ir::Program;

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
                racelab_lang::ir::Instr::Op { op, .. } => Some(*op),
                _ => None,
            })
    };
    ops().any(racelab_lang::ir::Op::is_filesystem)
        && !ops().any(|o| matches!(o, racelab_lang::ir::Op::Sql(_)))
        && prog.database.is_none()
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
    // One process per actor for every row, reset between runs, not one per row: starting a
    // process is most of a short run's cost in a slow guest (about 0.4 s under qemu).
    let _reuse = crate::backend::process::Reuse::here();
    for (stem, sc) in scenarios {
        for prog in sc.variants.iter().filter(|p| runs_on_real_fs(p)) {
            let prog = Arc::new(prog.clone());
            let tokens = shortest_tokens(model_rows, stem, &prog.variant);
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
                            why.message(),
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
        .any(|f| matches!(f.kind, racelab_lang::ir::FaultKind::Retransmit))
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
    let sched = match racelab_core::schedule::Schedule::decode(token) {
        Ok(s) => s,
        Err(e) => return error_row(stem, prog, "forced-replay", backend, &e.to_string()),
    };
    let start = std::time::Instant::now();
    let mut hits = 0u64;
    let mut runs = 0u64;
    // Replays that missed the target after reality chose another answer the model allows, with
    // the first such choice: they show reality's choice, not whether the race is real.
    let mut steered = 0u64;
    let mut first_steer = None;
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
                    fs_type: Some(r.env.fs.fs_type.clone()),
                    mount_options: Some(r.env.fs.options.clone()),
                    ..Default::default()
                });
                if let Some(d) = r.divergence {
                    row.divergence = Some(divergence_of(d));
                    row.trace = Some(r.trace);
                    break;
                }
                if r.reproduced(&sched) {
                    hits += 1;
                    row.trace.get_or_insert(r.trace);
                } else if let Some(s) = r.steered.into_iter().next() {
                    steered += 1;
                    first_steer.get_or_insert(s);
                }
            }
            Err(e) => return error_row(stem, prog, "forced-replay", backend, &e.to_string()),
        }
    }
    row.rate = Some(forced_rate(hits, runs));
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
    let all = hits > 0 && hits + steered == runs && row.divergence.is_none();
    row.outcome = match (&row.divergence, sched.target.as_deref()) {
        (Some(_), _) => Outcome::Holds,
        (None, Some(racelab_lang::ir::oracle::DEADLOCK)) if hits > 0 => Outcome::Deadlock,
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
    let steer_note = first_steer.map_or(String::new(), |s| {
        format!(
            "; in {steered} of {runs} the real client answered step {} ({}: {}) with {} where the token chose {}, both allowed by the model, and the race did not follow",
            s.step, s.actor, s.operation, s.real, s.token
        )
    });
    if hits == 0 && steered == runs && runs > 0 && row.divergence.is_none() {
        // Every replay went where reality chose: nothing was learned about the race.
        row.outcome = Outcome::Skipped;
        row.met = false;
        row.reason = Some(format!(
            "not forced: the token needs an answer only the real system chooses{steer_note}"
        ));
        return row;
    }
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
            "{} reproduced in {hits} of {runs} forced replays{steer_note}",
            sched.target.as_deref().unwrap_or("the violation")
        )
    });
    row
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
    let engine = if r.env.chaos {
        "stress-chaos"
    } else {
        "stress"
    };
    let mut row = base_row(stem, prog, engine, backend);
    let hit: Vec<&InvariantRate> = r.rates.iter().filter(|x| x.hits > 0).collect();
    let primary = r
        .rates
        .iter()
        .find(|x| row.expected_invariants.contains(&x.invariant) && x.hits > 0)
        .or(hit.first().copied());
    // Free runs can refute `holds` (a real system broke what the model proved), never a
    // violation: the model established it and forced replay reproduces it; stress measures how
    // often the kernel's own scheduling hits it.
    row.met = match row.expected {
        Verdict::Holds => hit.is_empty(),
        _ => true,
    };
    let unseen: Vec<&String> = row
        .expected_invariants
        .iter()
        .filter(|e| !hit.iter().any(|h| &h.invariant == *e))
        .collect();
    row.reason = (!unseen.is_empty() && row.expected != Verdict::Holds).then(|| {
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
            .find(|x| row.expected_invariants.contains(&x.invariant))
    });
    row.faults = (!prog.faults.is_empty()).then(|| nemesis_faults(prog, r));
    row.outcome = match primary {
        Some(p) if p.invariant == racelab_lang::ir::oracle::DEADLOCK => Outcome::Deadlock,
        Some(_) => Outcome::Violation,
        None => Outcome::Holds,
    };
    row.invariant = primary.map(|p| p.invariant.clone());
    row.coverage = Some(reports::Coverage::Budget);
    row.covers = Some(format!(
        "{} free runs{}",
        r.runs,
        if r.env.nemesis_seed.is_some() {
            " with the nemesis"
        } else {
            ""
        }
    ));
    row.schedules = r.runs;
    row.seconds = r.seconds;
    row.first_failure_after = r.first_failure.as_ref().map(|(i, _, _)| i + 1);
    row.replay = r.first_failure.as_ref().map(|(_, s, _)| s.encode());
    row.switches = r.first_failure.as_ref().map(|(_, s, _)| s.switches());
    row.rate = shown.map(rate_of);
    row.rates = rates_of(&r.rates);
    row.env = Some(reports::Env {
        fs_type: Some(r.env.fs.fs_type.clone()),
        mount_options: Some(r.env.fs.options.clone()),
        ..Default::default()
    });
    row.bound = Some(format!(
        "{} free-running runs with {} actors{} in {}",
        r.runs,
        r.env.mode.name(),
        if r.env.chaos { " and chaos" } else { "" },
        root.display()
    ));
    row.trace = r.first_failure.as_ref().map(|(_, _, t)| t.clone());
    row
}

/// A stress row's `faults`: the nemesis's seed, the budget, and how many runs each fault landed in.
fn nemesis_faults(prog: &Program, r: &crate::backend::stress::StressResult) -> String {
    let Some(seed) = r.env.nemesis_seed else {
        return "not injected in these stress runs (--no-nemesis)".to_string();
    };
    let landed: Vec<String> = r
        .env
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
