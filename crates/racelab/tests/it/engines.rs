//! Every engine must find a race it has to find, and prove a race-free scenario where it can.

use std::sync::Arc;
use std::time::Duration;

use racelab_core::explore::{explore, Budget, EngineConfig, EngineKind};
use racelab_lang::ir::Program;

/// The textbook lost update: read, then write back plus one.
pub const LOST_UPDATE: &str = r#"
scenario lost-update {
  about "two workers increment a shared counter with a read and a separate write"
  cell counter = 0
  actor worker x 2 {
    let seen = counter
    set counter = seen + 1
  }
  invariant no_lost_update: at end counter == 2
  expect violates no_lost_update
}
"#;

/// The same without the window: each worker appends to a log, nothing can be lost.
const NO_RACE: &str = r#"
scenario appends {
  log events
  actor worker x 2 {
    append events "hello from {self}"
    append events "bye from {self}"
  }
  invariant all_logged: at end count(events) == 4
  expect holds
}
"#;

pub fn program(src: &str) -> Arc<Program> {
    let sc = racelab_core::lang::compile("test.race", src)
        .unwrap_or_else(|e| panic!("{}", racelab_core::lang::render_plain(&e)));
    Arc::new(sc.variants[0].clone())
}

fn budget() -> Budget {
    Budget::new(5_000, Duration::from_secs(30))
}

/// Runs a test body once per engine, naming the engine in the test (ripgrep's `rgtest!` idea).
macro_rules! engine_test {
    ($name:ident, |$kind:ident| $body:block) => {
        mod $name {
            use super::*;
            #[test]
            fn shuttle_random() {
                let $kind = EngineKind::ShuttleRandom;
                $body
            }
            #[test]
            fn shuttle_pct() {
                let $kind = EngineKind::ShuttlePct;
                $body
            }
            #[test]
            fn shuttle_dfs() {
                let $kind = EngineKind::ShuttleDfs;
                $body
            }
            #[test]
            fn loom() {
                let $kind = EngineKind::Loom;
                $body
            }
        }
    };
}

engine_test!(finds_the_lost_update, |kind| {
    let prog = program(LOST_UPDATE);
    let ex = explore(&prog, &EngineConfig::new(kind, budget())).expect("engine runs");
    let f = ex
        .findings
        .iter()
        .find(|f| f.invariant == "no_lost_update")
        .unwrap_or_else(|| {
            panic!(
                "{} missed the lost update in {} schedules",
                kind.name(),
                ex.schedules
            )
        });
    assert!(f.after >= 1 && f.after <= ex.schedules);
    // The schedule must interleave the two workers: both read before either writes.
    let replayed = racelab_core::replay::replay(&prog, &f.schedule).expect("token fits");
    assert!(replayed.reproduced(&f.schedule));
    assert!(
        f.schedule.switches() >= 1,
        "a lost update needs a context switch"
    );
});

engine_test!(finds_nothing_where_nothing_can_break, |kind| {
    let prog = program(NO_RACE);
    let ex = explore(&prog, &EngineConfig::new(kind, budget())).expect("engine runs");
    assert!(
        ex.findings.is_empty(),
        "{} reported {:?}",
        kind.name(),
        ex.findings
    );
    assert!(ex.schedules > 0);
});

#[test]
fn dfs_and_loom_cover_a_small_scenario_exhaustively() {
    let prog = program(NO_RACE);
    for kind in [EngineKind::ShuttleDfs, EngineKind::Loom] {
        let ex = explore(&prog, &EngineConfig::new(kind, budget())).expect("engine runs");
        assert!(
            ex.exhaustive,
            "{} should cover 2 actors x 2 steps within {} schedules (explored {})",
            kind.name(),
            budget().schedules,
            ex.schedules
        );
    }
    // Random search is never a proof.
    let ex = explore(
        &prog,
        &EngineConfig::new(
            EngineKind::ShuttleRandom,
            Budget::new(50, Duration::from_secs(10)),
        ),
    )
    .expect("runs");
    assert!(!ex.exhaustive);
}

/// Each row says what its `holds` is worth: native-dfs a proof over every reachable state, loom
/// every schedule within its preemption bound (named), random search "not refuted"; and every
/// model row lists the model's assumptions.
#[test]
fn rows_state_what_their_verdict_covers_and_assumes() {
    use reports::Coverage;
    let prog = program(NO_RACE);
    let row = |kind: EngineKind| {
        let cfg = EngineConfig::new(kind, budget()).preemption_bound(2);
        racelab_real::suite::result_row("appends", &prog, &cfg, explore(&prog, &cfg))
    };
    let dfs = row(EngineKind::NativeDfs);
    assert_eq!(
        (dfs.coverage, dfs.exhaustive),
        (Some(Coverage::Proof), true)
    );
    assert!(
        dfs.covers
            .as_deref()
            .is_some_and(|c| c.starts_with("every reachable state (")),
        "{:?}",
        dfs.covers
    );
    assert!(reports::table::render_result_line(&dfs).contains("(proof over every reachable state)"));
    let loom = row(EngineKind::Loom);
    assert_eq!(
        (loom.coverage, loom.exhaustive),
        (Some(Coverage::Bounded), true)
    );
    assert_eq!(
        loom.covers.as_deref(),
        Some("every schedule within preemption bound 2")
    );
    assert!(reports::table::render_result_line(&loom)
        .contains("(exhaustive within preemption bound 2)"));
    let random = row(EngineKind::NativeRandom);
    assert_eq!(
        (random.coverage, random.exhaustive),
        (Some(Coverage::Budget), false)
    );
    assert!(reports::table::render_result_line(&random).contains("(not refuted: budget spent)"));
    for r in [&dfs, &loom, &random] {
        assert!(
            r.assumptions
                .iter()
                .any(|a| a.starts_with("faults: none declared")),
            "{:?}",
            r.assumptions
        );
        assert!(
            r.assumptions.iter().any(|a| a.starts_with("atomicity: ")),
            "{:?}",
            r.assumptions
        );
    }
    // A database variant names its isolation level.
    let db = racelab_core::lang::compile(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scenarios/patchwork-person.race"
        ),
        include_str!("../../../../scenarios/patchwork-person.race"),
    )
    .expect("compiles");
    let prog = Arc::new(db.variants[0].clone());
    let cfg = EngineConfig::new(
        EngineKind::NativeRandom,
        Budget::new(20, Duration::from_secs(10)),
    );
    let r = racelab_real::suite::result_row("patchwork-person", &prog, &cfg, explore(&prog, &cfg));
    assert!(
        r.assumptions
            .iter()
            .any(|a| a.starts_with("isolation: postgres READ COMMITTED")),
        "{:?}",
        r.assumptions
    );
    // Explored durations and two-step kernel calls are assumptions too: Mailman's naps are
    // `sleep between(...)`, and its `stat` is a lookup then an attribute read.
    let mailman = racelab_core::lang::compile(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scenarios/mailman-lockfile.race"
        ),
        include_str!("../../../../scenarios/mailman-lockfile.race"),
    )
    .expect("compiles");
    let prog = Arc::new(
        mailman
            .variants
            .iter()
            .find(|v| v.variant == "patched")
            .expect("variant patched")
            .clone(),
    );
    let r = racelab_real::suite::result_row("mailman-lockfile", &prog, &cfg, explore(&prog, &cfg));
    assert!(
        r.assumptions
            .iter()
            .any(|a| a.starts_with("durations: explored")),
        "{:?}",
        r.assumptions
    );
    assert!(
        r.assumptions
            .iter()
            .any(|a| a.starts_with("atomicity: `stat` is a path lookup then an attribute read")),
        "{:?}",
        r.assumptions
    );
}

#[test]
fn loom_refuses_more_actors_than_it_supports_and_names_the_alternative() {
    let src = LOST_UPDATE
        .replace("worker x 2", "worker x 6")
        .replace("counter == 2", "counter == 6");
    let prog = program(&src);
    let err = explore(&prog, &EngineConfig::new(EngineKind::Loom, budget()))
        .expect_err("loom must refuse 6 actors");
    assert!(err.0.contains("at most 5 actors"), "{}", err.0);
    assert!(
        err.0.contains("shuttle-random"),
        "the refusal should name the alternative: {}",
        err.0
    );
    // shuttle has no such limit.
    let ex = explore(
        &prog,
        &EngineConfig::new(EngineKind::ShuttleRandom, budget()),
    )
    .expect("shuttle runs 6 actors");
    assert!(ex.findings.iter().any(|f| f.invariant == "no_lost_update"));
}

#[test]
fn a_deadlock_free_sleeper_lets_time_advance() {
    // Virtual time: the waiter sleeps until the setter has run; no actor is starved.
    let src = r#"
scenario wakeup {
  cell flag = false
  actor setter { sleep 5s
    set flag = true }
  actor waiter {
    while not flag { sleep 1s }
    assert now >= 1098604805000, "woke before the flag was set"
  }
  invariant fine: always true
  expect holds
}
"#;
    let prog = program(src);
    let ex = explore(&prog, &EngineConfig::new(EngineKind::ShuttleDfs, budget())).expect("runs");
    assert!(ex.findings.is_empty(), "{:?}", ex.findings);
    assert!(ex.exhaustive);
}

/// The suite's portfolio stops when the verdict is settled: a native-dfs proof over every
/// reachable state means the other engines are not run, and their rows say who proved it.
#[test]
fn a_native_dfs_proof_settles_the_portfolio() {
    use racelab_real::suite::{self, Job};
    let budget = Budget::new(2_000, Duration::from_secs(20));
    let kinds = [
        EngineKind::ShuttleRandom,
        EngineKind::NativeRandom,
        EngineKind::NativeDfs,
    ];
    let jobs = |src: &str| -> Vec<Job> {
        let prog = program(src);
        kinds
            .iter()
            .map(|&k| Job {
                scenario: "test".into(),
                prog: prog.clone(),
                config: EngineConfig::new(k, budget),
            })
            .collect()
    };

    let rows = suite::run(&jobs(NO_RACE), &|_| {});
    let dfs = rows
        .iter()
        .find(|r| r.engine == "native-dfs")
        .expect("a native-dfs row");
    assert!(
        suite::is_proof(dfs),
        "native-dfs proves the race-free scenario: {dfs:?}"
    );
    for r in rows.iter().filter(|r| r.engine != "native-dfs") {
        assert_eq!(
            r.proved_by.as_deref(),
            Some("native-dfs"),
            "{} was settled by the proof",
            r.engine
        );
        assert_eq!(r.schedules, 0, "{} ran no schedule of its own", r.engine);
        assert!(
            r.met && r.outcome == reports::Outcome::Holds,
            "{} carries the proof's verdict: {r:?}",
            r.engine
        );
        assert!(
            r.reason.as_deref().is_some_and(|m| m.contains("not run")),
            "{} says it was not run",
            r.engine
        );
    }

    // A violation settles nothing for the others: each engine still runs and finds it itself.
    let rows = suite::run(&jobs(LOST_UPDATE), &|_| {});
    assert_eq!(rows.len(), kinds.len());
    for r in &rows {
        assert_eq!(r.proved_by, None, "{}", r.engine);
        assert!(
            r.schedules > 0 && r.outcome == reports::Outcome::Violation && r.met,
            "{} ran and found the lost update: {r:?}",
            r.engine
        );
    }
}

/// native-dfs on several threads proves what it proves on one, over exactly the same states and
/// the same count of schedules; and a violation found on several threads is explained by the
/// sequential search, so its token is the same whatever the threads did.
#[test]
fn parallel_proof_expands_the_same_states_and_leaves_counterexamples_deterministic() {
    let src = include_str!("../../../../scenarios/racelab-linklock.race");
    let sc = racelab_core::lang::compile(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scenarios/racelab-linklock.race"
        ),
        src,
    )
    .unwrap_or_else(|e| panic!("{}", racelab_core::lang::render_plain(&e)));
    let holds = Arc::new(sc.variant("no-fault").expect("variant").clone());
    let run = |prog: &Arc<Program>, workers: usize| {
        let cfg = EngineConfig::new(
            EngineKind::NativeDfs,
            Budget::new(u64::MAX, Duration::from_secs(300)),
        )
        .workers(workers);
        explore(prog, &cfg).expect("native-dfs runs")
    };
    let one = run(&holds, 1);
    let two = run(&holds, 2);
    assert!(
        one.exhaustive && two.exhaustive,
        "{} / {}",
        one.bound,
        two.bound
    );
    assert!(one.findings.is_empty() && two.findings.is_empty());
    assert!(one.states.unwrap_or(0) > 10_000, "{:?}", one.states);
    assert_eq!(one.states, two.states);
    assert_eq!(one.schedules, two.schedules);
    assert!(two.bound.contains("searched on 2 threads"), "{}", two.bound);
    // A budget that runs out is no proof, but what was explored is counted.
    let cut = explore(
        &holds,
        &EngineConfig::new(
            EngineKind::NativeDfs,
            Budget::new(u64::MAX, Duration::from_secs(300)),
        )
        .max_states(2_000)
        .workers(2),
    )
    .expect("native-dfs runs");
    assert!(!cut.exhaustive && cut.schedules > 0, "{}", cut.bound);
    assert!(cut.bound.contains("state budget"), "{}", cut.bound);

    let broken = program(LOST_UPDATE);
    let (one, two) = (run(&broken, 1), run(&broken, 2));
    assert!(!one.findings.is_empty());
    assert_eq!(one.findings, two.findings);
}
