//! What a verdict covers and what it assumes: `summary.json`'s `coverage`, `covers` and
//! `assumptions`.
//!
//! `exhaustive: true` meant two different things: native-dfs visited every reachable state (a
//! proof), loom covered every schedule within its preemption bound (a proof within that bound
//! only). A `holds` is worth what the search covered, under the model's assumptions (the
//! isolation level it gives a database, the durations it gives sleeps, the faults it may
//! inject, which calls are one atomic step); this module states both for every row.

use reports::Coverage;

use crate::explore::{EngineConfig, EngineKind, Exploration};
use crate::model::db::Flavour;
use racelab_lang::ir::{FaultKind, Instr, Op, Program};

/// What one model exploration covered, and the same in words.
pub fn of_exploration(cfg: &EngineConfig, ex: &Exploration) -> (Coverage, String) {
    match cfg.kind {
        EngineKind::NativeDfs if ex.exhaustive => {
            let states = ex
                .states
                .map_or(String::new(), |n| format!(" ({n} states)"));
            (Coverage::Proof, format!("every reachable state{states}"))
        }
        // shuttle's DFS has no depth or preemption bound here: when it runs out of schedules it
        // has run every schedule, and so reached every reachable state.
        EngineKind::ShuttleDfs if ex.exhaustive => (
            Coverage::Proof,
            format!(
                "every schedule ({} schedules, stateless depth-first)",
                ex.schedules
            ),
        ),
        EngineKind::Loom if ex.exhaustive => (
            Coverage::Bounded,
            format!(
                "every schedule within preemption bound {}",
                cfg.preemption_bound
            ),
        ),
        _ => (
            Coverage::Budget,
            format!("{} schedules ({})", ex.schedules, ex.bound),
        ),
    }
}

/// The coverage of runs on real systems: only what ran (free runs, forced replays, gated
/// executions), never a proof.
pub fn of_real_runs(runs: u64, what: &str) -> (Coverage, String) {
    (Coverage::Budget, format!("{runs} {what}"))
}

/// The model's assumptions for `prog`, one line each, in a fixed order: isolation, durations,
/// faults, atomicity (and NFS caches where modelled).
pub fn model_assumptions(prog: &Program) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(db) = &prog.database {
        out.push(format!("isolation: {}", isolation_level(db.flavour)));
    }
    if let Some(d) = durations(prog) {
        out.push(d);
    }
    out.push(faults(prog));
    out.push(atomicity(prog));
    if let Some(ms) = prog.nfs_cache_ms {
        out.push(format!(
            "nfs: each client caches attributes for {ms} ms; replies are lost only where a `retransmit` fault says so; where real clients were measured answering one call more than one way, the engines explore every answer: a `read` or `stat` through a name a client still caches for a file the server has since unnamed (the server's answer or the cached file's), a `stat` past the cache's lifetime but within 60 s of the lookup (the server's or the stale entry's), a `utime` of a removed file (ENOENT or ok), an `fstat` of an open file the server no longer names (ESTALE, nlink 0, or the attributes last seen), a `flock` while another actor's release may still be on its way to the server (granted or EAGAIN); a forced replay takes whichever answer the real client gives"
        ));
    }
    out
}

/// The isolation level the model gives a database of `flavour`: the server's default level.
/// The one place to update when the model gains isolation levels (`database ... isolation X`).
pub(crate) fn isolation_level(flavour: Flavour) -> String {
    match flavour {
        Flavour::Postgres => "postgres READ COMMITTED (the server's default)".to_string(),
        Flavour::InnoDb => "innodb REPEATABLE READ (the server's default: a snapshot from the first plain read; locking reads and writes see the latest version, with gap locks)".to_string(),
        Flavour::Sqlite => "sqlite SERIALIZABLE (WAL: one writer at a time, snapshots from the first statement, SQLITE_BUSY when a transaction that has read must wait to write)".to_string(),
    }
}

/// How the model chooses durations, when the variant has any (`sleep`, `work`, a stall).
fn durations(prog: &Program) -> Option<String> {
    let timed = prog.procs.iter().flat_map(|p| &p.code).any(|i| {
        matches!(
            i,
            Instr::Op {
                op: Op::Sleep | Op::Work,
                ..
            }
        )
    });
    let stalls = prog.faults.iter().any(|f| {
        matches!(
            f.kind,
            FaultKind::Stall { .. }
                | FaultKind::Signal {
                    kill_after: Some(_),
                    ..
                }
        )
    });
    if prog.explores_durations {
        return Some(
            "durations: explored: every `sleep/work between(lo, hi)` ends at hi or 1 ms before, at or after each other pending deadline in its window (every wake-up order); the window's start and times between deadlines are not tried; fixed durations take exactly their stated time"
                .to_string(),
        );
    }
    (timed || stalls).then(|| {
        "durations: fixed as written: every sleep, work and stall takes exactly its stated virtual time, so wake-up orders other durations would give are not explored".to_string()
    })
}

fn faults(prog: &Program) -> String {
    if prog.faults.is_empty() {
        return "faults: none declared: no crash, signal or stall is explored".to_string();
    }
    let names: Vec<&str> = prog
        .faults
        .iter()
        .map(|f| f.text.trim_start_matches("fault "))
        .collect();
    format!(
        "faults: at most {} per execution, landing at any step boundary, of: {}",
        prog.fault_budget,
        names.join("; ")
    )
}

fn atomicity(prog: &Program) -> String {
    if prog.split_calls {
        "atomicity: `stat` is a path lookup then an attribute read, and `write` an open with truncation then the write (two steps each, as the kernel makes them); every other world operation is one indivisible step".to_string()
    } else {
        "atomicity: every world operation is one indivisible step (the NFS client model answers `stat` from its attribute cache in one step)".to_string()
    }
}
