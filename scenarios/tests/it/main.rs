//! Tests that hold the built-in scenarios to their expectations, under the whole portfolio.

mod django;
mod documented_tokens;
mod grammar;
mod kernel_calls;
mod launchpad;
mod linklock;
mod mailman_faults;
mod native;
mod patchwork;
mod readme;
mod rewrite;
mod shrink;
use std::sync::Arc;
use std::time::Duration;

use racelab_core::explore::{portfolio, Budget, EngineConfig, EngineKind};
use racelab_real::suite;

/// A built-in scenario, compiled (the submodules share it).
pub(crate) fn load(stem: &str) -> racelab_core::lang::Scenario {
    let path = scenarios::dir().join(format!("{stem}.race"));
    let src = std::fs::read_to_string(&path).expect("built-in scenario exists");
    racelab_core::lang::compile(&path.display().to_string(), &src)
        .unwrap_or_else(|e| panic!("{}", racelab_core::lang::render_plain(&e)))
}

/// Every engine, plus a second random seed, with the same budget (the submodules share it): 5,000
/// schedules each, the seconds only a backstop. An engine that finds nothing spends its whole
/// budget, and the suite (`cargo xtask run-scenarios`) already gives every engine a search of
/// every variant; a budget in schedules keeps these tests to seconds and the same on any machine.
pub(crate) fn portfolio_configs(seconds: u64) -> Vec<EngineConfig> {
    let budget = Budget::new(5_000, Duration::from_secs(seconds));
    let mut configs: Vec<EngineConfig> = EngineKind::ALL
        .iter()
        .map(|&k| EngineConfig::new(k, budget))
        .collect();
    // A second random seed: the portfolio spreads seeds as well as engines across cores.
    configs.push(EngineConfig::new(EngineKind::ShuttleRandom, budget).seed(7));
    configs
}

#[test]
fn every_built_in_scenario_compiles_and_states_its_expectations() {
    let files = scenarios::all();
    assert!(!files.is_empty());
    for f in files {
        let stem = f.file_stem().expect("stem").to_string_lossy().into_owned();
        let sc = load(&stem);
        assert!(sc.about.is_some(), "{stem} needs an `about`");
        assert!(
            !sc.sources.is_empty(),
            "{stem} needs a `source` citing what it models"
        );
        for v in &sc.variants {
            assert!(
                v.expected.is_some(),
                "{stem}/{} states no expectation",
                v.variant
            );
        }
    }
}

#[test]
fn the_portfolio_finds_mailman_21_breaking_mutual_exclusion() {
    let sc = load("mailman-lockfile");
    let prog = Arc::new(sc.variant("mailman-2.1").expect("variant").clone());
    let results = portfolio::run(&prog, &portfolio_configs(30));
    for inv in ["no_spurious_log", "mutual_exclusion", "unhandled_error"] {
        let f = portfolio::first_finding(&results, inv)
            .unwrap_or_else(|| panic!("no engine found {inv}"));
        let replayed = racelab_core::replay::replay(&prog, &f.schedule).expect("token fits");
        assert!(
            replayed.reproduced(&f.schedule),
            "{inv}: the token does not reproduce"
        );
    }
    let mut rows: Vec<_> = results
        .into_iter()
        .map(|(cfg, r)| suite::result_row("mailman-lockfile", &prog, &cfg, r))
        .collect();
    suite::judge_portfolio(&mut rows);
    assert!(rows.iter().all(|r| r.met), "{rows:#?}");
}

/// The patch keeps mutual exclusion; its only finding is the log entry of a stat whose two
/// halves straddle an unlock ("unexpected linkcount: 1", as on real filesystems).
#[test]
fn the_patched_lock_keeps_mutual_exclusion_under_every_engine() {
    let sc = load("mailman-lockfile");
    let prog = Arc::new(sc.variant("patched").expect("variant").clone());
    let results = portfolio::run(&prog, &portfolio_configs(10));
    for (cfg, r) in &results {
        let ex = r.as_ref().expect("every engine runs three actors");
        let wrong: Vec<_> = ex
            .findings
            .iter()
            .filter(|f| f.invariant != "no_spurious_log")
            .collect();
        assert!(
            wrong.is_empty(),
            "{} broke the patched lock: {wrong:?}",
            cfg.kind.name()
        );
    }
    assert!(
        portfolio::first_finding(&results, "no_spurious_log").is_some(),
        "no engine found the stat window's log entry"
    );
}
