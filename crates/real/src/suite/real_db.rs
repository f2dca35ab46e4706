//! Rows for real databases: the model's findings forced statement by statement (or, for a
//! variant expected to hold, a few of the model's schedules), and stress runs.

use std::sync::Arc;

use reports::{Outcome, RunResult, Verdict};

use super::findings::shortest_tokens;
use super::real_fs::RealConfig;
use super::row::{
    base_row, divergence_of, error_row, forced_rate, rate_of, rates_of, real_coverage, skipped_row,
};
use racelab_core::lang::Scenario;
use racelab_lang::ir::Program;

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
    use racelab_core::model::db::Flavour;
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
    row.backend = r.env.backend.clone();
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
        Some(racelab_core::model::db::Flavour::InnoDb) => {
            (r.env.backend != "db:mariadb", "InnoDB's")
        }
        Some(racelab_core::model::db::Flavour::Sqlite) => {
            (r.env.backend != "db:sqlite", "SQLite's")
        }
        _ => (false, ""),
    };
    row.met = match row.expected {
        Verdict::Holds => hit.is_empty() || foreign,
        _ => true,
    };
    if foreign && !hit.is_empty() && row.expected == Verdict::Holds {
        row.reason = Some(format!("the variant follows {own} rules and its SQL is written for that server; {} breaks it in free runs: recorded, not judged", r.env.backend));
    }
    row.outcome = match primary {
        Some(p) if p.invariant == racelab_lang::ir::oracle::DEADLOCK => Outcome::Deadlock,
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
    row.rate = shown.map(rate_of);
    row.rates = rates_of(&r.rates);
    row.env = Some(db_env(&r.env));
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
    sched: &racelab_core::schedule::Schedule,
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
                row.env = Some(db_env(&r.env));
                if let Some(d) = r.divergence {
                    row.divergence = Some(divergence_of(d));
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
    row.rate = Some(forced_rate(hits, runs));
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
        (None, _) if sched.target.as_deref() == Some(racelab_lang::ir::oracle::DEADLOCK) => {
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
pub fn model_schedules(
    prog: &Arc<Program>,
    random: usize,
) -> Vec<racelab_core::schedule::Schedule> {
    let mut out = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for k in 0..=random {
        let mut m = racelab_core::model::Machine::new(Arc::clone(prog));
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
        let s = racelab_core::schedule::Schedule::of(prog, None, steps);
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
            let mut scheds: Vec<racelab_core::schedule::Schedule> =
                shortest_tokens(model_rows, stem, &prog.variant)
                    .iter()
                    .filter_map(|t| racelab_core::schedule::Schedule::decode(t).ok())
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
                                ..skipped_row(stem, &prog, engine, &t.name, why.message())
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
                        ..error_row(stem, &prog, "stress", &t.name, why.message())
                    },
                };
                push(row, &mut rows);
            }
        }
    }
    rows
}
