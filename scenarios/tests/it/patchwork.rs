//! Seed 003, Patchwork's parallel mail parsing: every variant of the three Patchwork scenarios
//! meets its expectation under the whole portfolio, and the InnoDB 1213 finding replays as the
//! report describes it (an INSERT waiting on a gap lock, the other INSERT rolled back as the
//! deadlock victim).

use std::sync::Arc;

use super::{load, portfolio_configs};
use racelab_core::explore::{portfolio, EngineConfig, Exploration, Refusal};
use racelab_core::schedule::Schedule;
use racelab_real::suite;

type Results = Vec<(EngineConfig, Result<Exploration, Refusal>)>;

/// Runs the portfolio on `stem`/`variant` and asserts that, judged as a portfolio, every engine
/// meets the variant's expectation. Returns the program, the raw results and the judged rows.
fn meets(
    stem: &str,
    variant: &str,
    seconds: u64,
) -> (
    Arc<racelab_lang::ir::Program>,
    Results,
    Vec<reports::RunResult>,
) {
    let sc = load(stem);
    let prog = Arc::new(
        sc.variant(variant)
            .unwrap_or_else(|| panic!("{stem} has no variant {variant}"))
            .clone(),
    );
    let results = portfolio::run(&prog, &portfolio_configs(seconds));
    let mut rows: Vec<_> = results
        .iter()
        .cloned()
        .map(|(cfg, r)| suite::result_row(stem, &prog, &cfg, r))
        .collect();
    suite::judge_portfolio(&mut rows);
    assert!(
        rows.iter().all(|r| r.met),
        "{stem}/{variant} does not meet its expectation: {rows:#?}"
    );
    (prog, results, rows)
}

/// A `holds` variant: nothing broke, and every engine really explored (not a vacuous pass).
fn holds(stem: &str, variant: &str) {
    let (_, results, _) = meets(stem, variant, 10);
    for (cfg, r) in &results {
        let ex = r
            .as_ref()
            .unwrap_or_else(|e| panic!("{} refused {stem}/{variant}: {}", cfg.kind.name(), e.0));
        assert!(
            ex.findings.is_empty(),
            "{} broke {stem}/{variant}: {:?}",
            cfg.kind.name(),
            ex.findings
        );
        // A stateful search that covered every state has explored enough, however few paths
        // its tree has; the others must have run a fair number of schedules.
        assert!(
            ex.exhaustive && ex.states.is_some() || ex.schedules > 40,
            "{} explored only {} schedules of {stem}/{variant}",
            cfg.kind.name(),
            ex.schedules
        );
    }
}

/// A violating variant: met, and each expected finding's token replays to the same break.
fn violates(stem: &str, variant: &str, expected: &[&str]) {
    let (prog, results, _) = meets(stem, variant, 15);
    for inv in expected {
        let f = portfolio::first_finding(&results, inv)
            .unwrap_or_else(|| panic!("no engine found {inv} in {stem}/{variant}"));
        let replayed = racelab_core::replay::replay(&prog, &f.schedule).expect("token fits");
        assert!(
            replayed.reproduced(&f.schedule),
            "{stem}/{variant}: the {inv} token does not reproduce"
        );
    }
}

#[test]
fn patchwork_person_check_then_insert_loses_the_losers_mail() {
    violates(
        "patchwork-person",
        "check-then-insert",
        &["no_mail_lost", "unhandled_error"],
    );
}

#[test]
fn patchwork_person_in_a_transaction_still_loses_it() {
    violates(
        "patchwork-person",
        "in-a-transaction",
        &["no_mail_lost", "unhandled_error"],
    );
}

#[test]
fn patchwork_person_get_or_create_holds() {
    holds("patchwork-person", "get-or-create");
}

/// Django #13906: at InnoDB's default REPEATABLE READ the retry get() reads the old snapshot.
#[test]
fn patchwork_get_or_create_in_an_innodb_transaction_loses_the_mail() {
    violates(
        "patchwork-person-innodb",
        "get-or-create-in-a-transaction",
        &["no_mail_lost", "unhandled_error"],
    );
}

#[test]
fn patchwork_get_or_create_in_a_sqlite_transaction_is_locked_out() {
    violates(
        "patchwork-person-sqlite",
        "get-or-create-in-a-transaction",
        &["no_mail_lost", "unhandled_error"],
    );
}

#[test]
fn patchwork_get_or_create_holds_on_sqlite_with_begin_immediate_or_autocommit() {
    holds("patchwork-person-sqlite", "begin-immediate");
    holds("patchwork-person-sqlite", "autocommit");
}

#[test]
fn patchwork_save_at_innodb_read_committed_takes_no_gap_lock_and_holds() {
    holds("patchwork-deadlock-1213", "save-read-committed");
}

#[test]
fn patchwork_objects_create_holds_under_innodb() {
    holds("patchwork-deadlock-1213", "objects-create");
}

#[test]
fn patchwork_save_deadlocks_on_the_gap_lock_with_mysql_1213() {
    let (prog, results, rows) = meets("patchwork-deadlock-1213", "save", 15);

    // The finding's message names the error as the report shows it.
    let f = portfolio::first_finding(&results, "unhandled_error")
        .expect("some engine found the unhandled 1213");
    assert!(
        f.message.contains("OperationalError") && f.message.contains("1213"),
        "the finding does not name the 1213 deadlock: {}",
        f.message
    );
    assert!(
        portfolio::first_finding(&results, "no_mail_lost").is_some(),
        "no engine saw the mail lost"
    );
    assert!(
        portfolio::first_finding(&results, "deadlock").is_none(),
        "InnoDB resolves the cycle itself; nothing should hang"
    );

    // Replay the printed (shrunk) token, as a reader would.
    let token = rows
        .iter()
        .flat_map(|r| r.findings.iter())
        .find(|f| f.invariant == "unhandled_error")
        .map(|f| f.replay.clone())
        .expect("a row carries the unhandled_error token");
    let sched = Schedule::decode(&token).expect("the token decodes");
    let replayed =
        racelab_core::replay::replay(&prog, &sched).expect("the token fits the scenario");
    assert!(
        replayed.reproduced(&sched),
        "the token does not reproduce unhandled_error"
    );

    let steps = &replayed.trace.steps;
    let blocked = steps
        .iter()
        .position(|s| {
            s.operation.contains("INSERT INTO patch")
                && s.result.starts_with("blocked")
                && s.result.contains("gap")
        })
        .unwrap_or_else(|| panic!("no INSERT blocked on a gap lock in {steps:#?}"));
    let victim = steps
        .iter()
        .position(|s| {
            s.operation.contains("INSERT INTO patch")
                && s.result.contains("OperationalError")
                && s.result.contains("1213")
        })
        .unwrap_or_else(|| panic!("no INSERT failed with OperationalError 1213 in {steps:#?}"));
    assert!(
        blocked < victim,
        "the victim closes the cycle after the other INSERT waits: {steps:#?}"
    );
    assert_ne!(
        steps[blocked].actor, steps[victim].actor,
        "the waiter and the victim are the two parsers: {steps:#?}"
    );
    assert!(
        steps[victim].broke.iter().any(|b| b == "unhandled_error"),
        "the 1213 is what nothing handles: {steps:#?}"
    );
    // Both parsers' UPDATEs matched nothing (and so locked the gap) before either INSERT.
    let empty_updates = steps[..blocked]
        .iter()
        .filter(|s| s.operation.contains("UPDATE patch") && s.result == "0")
        .count();
    assert_eq!(
        empty_updates, 2,
        "both UPDATEs precede the INSERTs: {steps:#?}"
    );
}

#[test]
fn patchwork_series_2018_splits_the_series() {
    violates("patchwork-series", "find-or-create-2018", &["one_series"]);
}

#[test]
fn patchwork_series_unique_key_and_retry_still_split_it() {
    violates("patchwork-series", "unique-retry", &["one_series"]);
}

#[test]
fn patchwork_series_second_query_still_splits_it() {
    violates("patchwork-series", "second-query", &["one_series"]);
}
