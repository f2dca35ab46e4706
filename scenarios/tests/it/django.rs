//! Holds `django-import-deadlock.race` (seed 002, Django ticket 18251) to its expectations, and
//! checks that Django 1.4's deadlock replays as the AB-BA order the report draws.

use std::sync::Arc;
use std::time::Duration;

use super::load;
use racelab_core::explore::{portfolio, Budget, EngineConfig, EngineKind, Exploration, Refusal};
use racelab_real::suite;

const STEM: &str = "django-import-deadlock";

fn variant(name: &str) -> Arc<racelab_lang::ir::Program> {
    Arc::new(
        load(STEM)
            .variant(name)
            .unwrap_or_else(|| panic!("variant {name}"))
            .clone(),
    )
}

/// Every engine once, and a second random seed. The schedule budget keeps the engines that
/// find nothing (depth-first on the deadlocking variants, everyone on fix-py2) to a few seconds;
/// the engines that find the deadlock do so within a few hundred schedules.
fn portfolio_configs(schedules: u64, seconds: u64) -> Vec<EngineConfig> {
    let budget = Budget::new(schedules, Duration::from_secs(seconds));
    let mut configs: Vec<EngineConfig> = EngineKind::ALL
        .iter()
        .map(|&k| EngineConfig::new(k, budget))
        .collect();
    configs.push(EngineConfig::new(EngineKind::ShuttleRandom, budget).seed(7));
    configs
}

/// Judges the portfolio's rows as `racelab suite` does and asserts every row met the
/// variant's expectation.
fn assert_portfolio_meets(
    prog: &Arc<racelab_lang::ir::Program>,
    results: Vec<(EngineConfig, Result<Exploration, Refusal>)>,
) {
    let mut rows: Vec<_> = results
        .into_iter()
        .map(|(cfg, r)| suite::result_row(STEM, prog, &cfg, r))
        .collect();
    suite::judge_portfolio(&mut rows);
    assert!(rows.iter().all(|r| r.met), "{}: {rows:#?}", prog.variant);
}

#[test]
fn django_14_deadlocks_and_replays_as_ab_ba() {
    let prog = variant("django-1.4");
    let results = portfolio::run(&prog, &portfolio_configs(5_000, 20));

    // loom is deterministic: its finding is the same on every run.
    let loom = results
        .iter()
        .find(|(cfg, _)| cfg.kind == EngineKind::Loom)
        .and_then(|(_, r)| r.as_ref().ok())
        .expect("loom runs two actors");
    let found = loom
        .findings
        .iter()
        .find(|f| f.invariant == "deadlock")
        .expect("loom finds the deadlock");
    let shrunk = racelab_core::replay::shrink(&prog, &found.schedule);
    let replayed = racelab_core::replay::replay(&prog, &shrunk).expect("the token fits");
    assert!(
        replayed.reproduced(&shrunk),
        "the shrunk schedule does not deadlock"
    );
    let trace = &replayed.trace;
    eprintln!(
        "{}",
        reports::table::render_trace(trace, reports::table::Style::plain())
    );

    let actor = |name: &str| trace.actors.iter().position(|a| a == name).expect("actor");
    let (t1, t2) = (actor("thread1"), actor("thread2"));
    let steps_of = |a: usize| -> Vec<(usize, &reports::TraceStep)> {
        trace
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.actor == Some(a))
            .collect()
    };
    let acquisitions = |a: usize| -> Vec<(usize, &reports::TraceStep)> {
        steps_of(a)
            .into_iter()
            .filter(|(_, s)| {
                s.operation.starts_with("with ") || s.operation.starts_with("acquire ")
            })
            .collect()
    };

    // Each thread's last step is the acquisition that hangs, on the lock the other one holds.
    let (b1, last1) = *steps_of(t1).last().expect("thread1 ran");
    let (b2, last2) = *steps_of(t2).last().expect("thread2 ran");
    assert_eq!(last1.operation, "with import_lock");
    assert_eq!(last1.result, "blocked: import_lock is held by thread2");
    assert_eq!(last2.operation, "with write_lock");
    assert_eq!(last2.result, "blocked: write_lock is held by thread1");

    // Every acquisition before those succeeded: neither thread waited until the cycle closed.
    for a in [t1, t2] {
        let acq = acquisitions(a);
        let (_, before) = acq.split_last().expect("acquisitions");
        assert!(
            before.iter().all(|(_, s)| s.result == "ok"),
            "an earlier acquisition blocked: {before:?}"
        );
    }

    // The AB-BA order: thread1 took write_lock (A), thread2 took the import lock (B), both before
    // either blocked; and neither released its lock afterwards.
    let took = |a: usize, op: &str| {
        acquisitions(a)
            .iter()
            .rev()
            .find(|(_, s)| s.operation == op && s.result == "ok")
            .map(|(i, _)| *i)
    };
    let a1 = took(t1, "with write_lock").expect("thread1 took write_lock");
    let a2 = took(t2, "with import_lock").expect("thread2 took the import lock");
    assert!(
        a1 < b1.min(b2) && a2 < b1.min(b2),
        "both locks are taken before either thread blocks"
    );
    let released = |a: usize, op: &str, after: usize| {
        steps_of(a)
            .iter()
            .any(|(i, s)| *i > after && s.operation.starts_with(op))
    };
    assert!(
        !released(t1, "release write_lock", a1),
        "thread1 let go of write_lock"
    );
    assert!(
        !released(t2, "release import_lock", a2),
        "thread2 let go of the import lock"
    );

    assert!(
        trace.verdict.contains("thread1 waits for rlock `import_lock` held by thread2; thread2 waits for rlock `write_lock` held by thread1"),
        "the verdict names the cycle: {}",
        trace.verdict
    );

    assert_portfolio_meets(&prog, results);
}

#[test]
fn django_14_under_the_lock_c_workaround_still_deadlocks_once_c_is_dropped() {
    let prog = variant("workaround");
    assert_portfolio_meets(&prog, portfolio::run(&prog, &portfolio_configs(5_000, 20)));
}

#[test]
fn django_fix_holds_under_python_2s_global_import_lock() {
    let prog = variant("fix-py2");
    let mut configs = portfolio_configs(5_000, 20);
    // loom covers every schedule within preemption bound 3: a proof within that bound.
    configs.push(
        EngineConfig::new(
            EngineKind::Loom,
            Budget::new(50_000, Duration::from_secs(20)),
        )
        .preemption_bound(3),
    );
    let results = portfolio::run(&prog, &configs);
    let exhaustive = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .filter(|e| e.engine == "loom" && e.exhaustive)
        .count();
    assert_eq!(
        exhaustive, 2,
        "loom covers fix-py2 at preemption bounds 2 and 3"
    );
    assert_portfolio_meets(&prog, results);
}

#[test]
fn django_fix_deadlocks_under_python_3s_module_locks() {
    let prog = variant("fix-py3");
    assert_portfolio_meets(&prog, portfolio::run(&prog, &portfolio_configs(5_000, 20)));
}
