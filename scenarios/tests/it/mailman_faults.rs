//! The fault scenarios: Mailman's CGI under Apache's SIGTERM-then-SIGKILL (`mailman-stale-lock`)
//! and the patched LockFile with a crashed or stalled qrunner (`mailman-lockfile`). Each variant
//! is held to its expectation under the whole portfolio, and every finding is replayed from its
//! token: it reproduces, and its trace shows the fault that caused it, in the target's column.

use std::sync::Arc;

use super::{load, portfolio_configs};
use racelab_core::explore::portfolio;
use racelab_real::suite;

/// Explores `stem`/`variant` with the portfolio (`seconds` per engine) and asserts that:
/// - every invariant in `expected` is found, and nothing else (the portfolio meets the variant's
///   `expect`, judged as `racelab suite` judges it);
/// - each finding's token replays and breaks its invariant again;
/// - each replayed trace has a `FAULT` row in the column of `target` (no variant breaks
///   anything without its fault).
fn check(stem: &str, variant: &str, seconds: u64, expected: &[&str], target: &str) {
    let sc = load(stem);
    let prog = Arc::new(sc.variant(variant).expect("variant").clone());
    let results = portfolio::run(&prog, &portfolio_configs(seconds));

    for inv in expected {
        let f = portfolio::first_finding(&results, inv)
            .unwrap_or_else(|| panic!("{stem}/{variant}: no engine found {inv}"));
        let replayed = racelab_core::replay::replay(&prog, &f.schedule).expect("token fits");
        assert!(
            replayed.reproduced(&f.schedule),
            "{stem}/{variant}: the {inv} token does not reproduce"
        );
        let trace = &replayed.trace;
        let fault_rows: Vec<usize> = (0..trace.steps.len())
            .filter(|&i| trace.steps[i].operation.starts_with("FAULT"))
            .collect();
        assert!(
            !fault_rows.is_empty(),
            "{stem}/{variant}: the {inv} trace has no FAULT row: {trace:#?}"
        );
        for i in fault_rows {
            let column = trace.steps[i].actor.map(|a| trace.actors[a].as_str());
            assert_eq!(
                column,
                Some(target),
                "{stem}/{variant}: FAULT row {i} of the {inv} trace is not in {target}'s column"
            );
        }
    }

    let mut rows: Vec<_> = results
        .into_iter()
        .map(|(cfg, r)| suite::result_row(stem, &prog, &cfg, r))
        .collect();
    suite::judge_portfolio(&mut rows);
    assert!(rows.iter().all(|r| r.met), "{stem}/{variant}: {rows:#?}");
}

#[test]
fn stale_lock_no_handler_leaves_the_list_locked() {
    check(
        "mailman-stale-lock",
        "no-handler",
        10,
        &["no_lockout", "no_stale_lock"],
        "cgi",
    );
}

#[test]
fn stale_lock_unlock_and_return_writes_the_list_without_the_lock() {
    check(
        "mailman-stale-lock",
        "unlock-and-return",
        10,
        &[
            "locked_writes",
            "no_lockout",
            "no_stale_lock",
            "unhandled_error",
        ],
        "cgi",
    );
}

#[test]
fn stale_lock_unlock_and_exit_still_leaves_the_list_locked_before_the_handler_is_installed() {
    check(
        "mailman-stale-lock",
        "unlock-and-exit",
        10,
        &["no_lockout", "no_stale_lock"],
        "cgi",
    );
}

#[test]
fn patched_lockfile_with_a_crashed_holder() {
    check(
        "mailman-lockfile",
        "patched-crash",
        10,
        &["no_spurious_log", "mutual_exclusion", "unhandled_error"],
        "qrunner1",
    );
}

#[test]
fn patched_lockfile_with_a_stalled_qrunner() {
    check(
        "mailman-lockfile",
        "patched-stall",
        10,
        &["no_spurious_log", "mutual_exclusion", "unhandled_error"],
        "qrunner1",
    );
}
