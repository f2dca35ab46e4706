//! racelab's LinkLock (`crates/locks/src/link.rs`) modelled in `racelab-linklock.race`: mutual
//! exclusion must hold under crash faults and stalls shorter than the lifetime, under the whole
//! portfolio; a stall past the lifetime breaks it (a lease's nature), and so does flufl.lock
//! 10.0's own algorithm with one crash. A change to LinkLock's algorithm goes into the scenario
//! first, and this test fails if it breaks mutual exclusion.

use std::sync::Arc;
use std::time::Duration;

use racelab_core::explore::{portfolio, Budget, EngineConfig, EngineKind};
use racelab_real::suite;

fn load() -> racelab_core::lang::Scenario {
    let path = scenarios::dir().join("racelab-linklock.race");
    let src = std::fs::read_to_string(&path).expect("built-in scenario exists");
    racelab_core::lang::compile(&path.display().to_string(), &src)
        .unwrap_or_else(|e| panic!("{}", racelab_core::lang::render_plain(&e)))
}

/// A budget in schedules, the seconds only a backstop: a variant that holds spends its whole
/// budget, and the suite (`cargo xtask run-scenarios`) gives every engine its own longer search
/// of every variant; here 2,000 schedules per engine (the `holds` check asks for more than 1,000)
/// keep the test to seconds and the same on any machine.
fn portfolio_configs(seconds: u64) -> Vec<EngineConfig> {
    let budget = Budget::new(2_000, Duration::from_secs(seconds));
    let mut configs: Vec<EngineConfig> = EngineKind::ALL
        .iter()
        .map(|&k| EngineConfig::new(k, budget))
        .collect();
    configs.push(EngineConfig::new(EngineKind::ShuttleRandom, budget).seed(7));
    configs
}

/// Every engine explores the variant without finding anything broken, and explores enough.
fn holds(variant: &str) {
    let sc = load();
    let prog = Arc::new(sc.variant(variant).expect("variant").clone());
    let results = portfolio::run(&prog, &portfolio_configs(5));
    for (cfg, r) in &results {
        let ex = r
            .as_ref()
            .unwrap_or_else(|e| panic!("{variant}: {} could not explore: {e:?}", cfg.kind.name()));
        assert!(
            ex.findings.is_empty(),
            "racelab-linklock/{variant}: {} broke LinkLock: {:?}",
            cfg.kind.name(),
            ex.findings.iter().map(|f| &f.invariant).collect::<Vec<_>>()
        );
        assert!(
            ex.schedules > 1000,
            "{variant}: {} explored only {} schedules",
            cfg.kind.name(),
            ex.schedules
        );
    }
}

/// The portfolio finds each of `expected` (and nothing else), and each token replays.
fn violates(variant: &str, expected: &[&str]) {
    let sc = load();
    let prog = Arc::new(sc.variant(variant).expect("variant").clone());
    let results = portfolio::run(&prog, &portfolio_configs(5));
    for inv in expected {
        let f = portfolio::first_finding(&results, inv)
            .unwrap_or_else(|| panic!("{variant}: no engine found {inv}"));
        let replayed = racelab_core::replay::replay(&prog, &f.schedule).expect("token fits");
        assert!(
            replayed.reproduced(&f.schedule),
            "{variant}: the {inv} token does not reproduce"
        );
    }
    let mut rows: Vec<_> = results
        .into_iter()
        .map(|(cfg, r)| suite::result_row("racelab-linklock", &prog, &cfg, r))
        .collect();
    suite::judge_portfolio(&mut rows);
    assert!(rows.iter().all(|r| r.met), "{variant}: {rows:#?}");
}

#[test]
fn linklock_holds_without_faults() {
    holds("no-fault");
}

#[test]
fn linklock_holds_with_a_crash_anywhere() {
    holds("crash");
}

#[test]
fn linklock_holds_with_two_crashes() {
    holds("crash-two");
}

#[test]
fn linklock_holds_with_a_crash_and_a_stall_shorter_than_the_lifetime() {
    holds("crash-and-stall");
}

#[test]
fn linklock_cannot_survive_a_stall_past_the_lifetime() {
    violates(
        "stall-past-lifetime",
        &["mutual_exclusion", "never_broken", "unhandled_error"],
    );
}

#[test]
fn flufl_lock_10_breaks_mutual_exclusion_with_one_crash() {
    violates(
        "flufl-lock-10",
        &["mutual_exclusion", "never_broken", "unhandled_error"],
    );
}
