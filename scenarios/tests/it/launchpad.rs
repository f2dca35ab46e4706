//! Holds `launchpad-readonly-switch.race` (seed 004, Launchpad bug 531834) to its expectations:
//! the DSN check shared across threads leaves connections open to the read-write master, the
//! thread-local checks hold, and the shipped fix still fails at a cold start because
//! `raw_connect()` reads the shared DSN back.

use std::sync::Arc;

use super::{load, portfolio_configs};
use racelab_core::explore::{portfolio, EngineConfig, EngineKind, Exploration, Refusal};
use racelab_lang::ir::Program;
use racelab_real::suite;

const STEM: &str = "launchpad-readonly-switch";
const INVARIANT: &str = "no_rw_connections";

fn variant(name: &str) -> Arc<Program> {
    Arc::new(
        load(STEM)
            .variant(name)
            .unwrap_or_else(|| panic!("{STEM} has no variant {name}"))
            .clone(),
    )
}

type Results = Vec<(EngineConfig, Result<Exploration, Refusal>)>;

/// Runs the portfolio on `name` and asserts that every row meets the variant's expectation.
fn explore_and_judge(name: &str, seconds: u64) -> (Arc<Program>, Results) {
    let prog = variant(name);
    let results = portfolio::run(&prog, &portfolio_configs(seconds));
    let mut rows: Vec<_> = results
        .iter()
        .map(|(cfg, r)| suite::result_row(STEM, &prog, cfg, r.clone()))
        .collect();
    suite::judge_portfolio(&mut rows);
    assert!(rows.iter().all(|r| r.met), "{name}: {rows:#?}");
    (prog, results)
}

/// One step of a replayed trace: who, what, and what it returned.
struct Step {
    actor: String,
    operation: String,
    result: String,
}

/// Replays the portfolio's first finding of the invariant, asserts it reproduces, and returns
/// its steps with the rendered table (for failure messages).
fn replay_first_finding(prog: &Arc<Program>, results: &Results) -> (Vec<Step>, String) {
    let found =
        portfolio::first_finding(results, INVARIANT).expect("some engine found no_rw_connections");
    let replayed =
        racelab_core::replay::replay(prog, &found.schedule).expect("the token fits the scenario");
    assert!(
        replayed.reproduced(&found.schedule),
        "the token does not reproduce {INVARIANT}"
    );
    let t = &replayed.trace;
    let table = reports::table::render_trace(t, reports::table::Style::plain());
    let steps = t
        .steps
        .iter()
        .filter_map(|s| {
            Some(Step {
                actor: t.actors[s.actor?].clone(),
                operation: s.operation.clone(),
                result: s.result.clone(),
            })
        })
        .collect();
    (steps, table)
}

fn is_read_only_check(s: &Step) -> bool {
    s.operation == "stat(READ_ONLY_TXT)"
}

fn is_raw_connect(s: &Step) -> bool {
    s.operation.starts_with("set dsn")
}

/// Index of the first step at which `worker`'s is_read_only() saw read-only.txt.
fn first_read_only_request(steps: &[Step], worker: &str) -> Option<usize> {
    steps
        .iter()
        .position(|s| s.actor == worker && is_read_only_check(s) && s.result != "ENOENT")
}

#[test]
fn shared_dsn_leaves_a_thread_on_the_read_write_master() {
    let (prog, results) = explore_and_judge("shared-dsn", 15);
    let (steps, table) = replay_first_finding(&prog, &results);
    let switch = steps
        .iter()
        .position(|s| s.actor == "switcher" && s.operation == "create(READ_ONLY_TXT)")
        .expect("the switch happens");
    // The stale thread: its request saw read-only.txt, it read ro_main_master from the shared
    // Database (another thread's reconnect had put it there), and it never ran raw_connect()
    // again after the switch; its one connect happened in read-write mode, before it.
    let stale = ["worker1", "worker2"].into_iter().find(|&w| {
        let Some(ro) = first_read_only_request(&steps, w) else {
            return false;
        };
        let after = &steps[ro + 1..];
        let read_replica = after
            .iter()
            .any(|s| s.actor == w && s.operation == "dsn" && s.result == "ro_main_master");
        let reconnected = after.iter().any(|s| s.actor == w && is_raw_connect(s));
        let connected_before = steps[..switch]
            .iter()
            .any(|s| s.actor == w && is_raw_connect(s));
        read_replica && !reconnected && connected_before
    });
    let stale = stale
        .unwrap_or_else(|| panic!("no thread stays on the master without reconnecting:\n{table}"));
    // And someone else did reconnect after the switch: that is what rewrote the shared DSN.
    assert!(
        steps[switch..]
            .iter()
            .any(|s| s.actor != stale && is_raw_connect(s)),
        "no other thread reconnected after the switch:\n{table}"
    );
}

#[test]
fn connection_class_check_holds() {
    explore_and_judge("connection-class", 5);
}

#[test]
fn per_thread_flag_holds() {
    let (_, results) = explore_and_judge("per-thread-flag", 5);
    let loom = results
        .iter()
        .find(|(c, _)| c.kind == EngineKind::Loom)
        .and_then(|(_, r)| r.as_ref().ok())
        .expect("loom runs four actors");
    assert!(
        loom.exhaustive,
        "loom should cover the shipped fix within its preemption bound"
    );
}

#[test]
fn per_thread_flag_breaks_at_a_cold_start_through_raw_connect() {
    let (prog, results) = explore_and_judge("per-thread-flag-cold-start", 10);
    let (steps, table) = replay_first_finding(&prog, &results);
    // The window inside raw_connect(): the read-only request's thread writes the shared _dsn,
    // the other thread (in a read-write request) overwrites it, and the first then connects
    // to what it reads back: the master. It never reconnects afterwards.
    let stale = ["worker1", "worker2"].into_iter().find(|&w| {
        let Some(ro) = first_read_only_request(&steps, w) else {
            return false;
        };
        let Some(write) = steps[ro..]
            .iter()
            .position(|s| s.actor == w && is_raw_connect(s))
            .map(|i| ro + i)
        else {
            return false;
        };
        let Some(read) = steps[write..]
            .iter()
            .position(|s| s.actor == w && s.operation == "dsn")
            .map(|i| write + i)
        else {
            return false;
        };
        let overwritten = steps[write + 1..read]
            .iter()
            .any(|s| s.actor != w && is_raw_connect(s));
        let reconnected = steps[read + 1..]
            .iter()
            .any(|s| s.actor == w && is_raw_connect(s));
        steps[read].result == "rw_main_master" && overwritten && !reconnected
    });
    assert!(
        stale.is_some(),
        "no read-only request connected to the master through the overwritten DSN:\n{table}"
    );
}

#[test]
fn connecting_with_its_own_dsn_holds_at_a_cold_start() {
    let (_, results) = explore_and_judge("per-thread-flag-own-dsn", 5);
    let loom = results
        .iter()
        .find(|(c, _)| c.kind == EngineKind::Loom)
        .and_then(|(_, r)| r.as_ref().ok())
        .expect("loom runs four actors");
    assert!(
        loom.exhaustive,
        "loom should cover the cold start within its preemption bound"
    );
}
