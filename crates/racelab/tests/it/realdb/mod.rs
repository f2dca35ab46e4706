//! Real databases: the Patchwork scenarios forced statement by statement and stress-run on
//! SQLite, PostgreSQL and MariaDB; Launchpad's read-only switch with real connections to two
//! real databases, counted by the server.
//!
//! SQLite is compiled in. PostgreSQL and MariaDB come from `$RACELAB_POSTGRES_URL` and
//! `$RACELAB_MARIADB_URL`, which `cargo xtask db up` prints (and `.ci/run` exports): a test that
//! needs a server and finds none fails, saying how to start one; it never passes vacuously.

use std::sync::Arc;
use std::time::Duration;

use racelab_core::explore::{explore, Budget, EngineConfig, EngineKind};
use racelab_core::model::Machine;
use racelab_core::schedule::Schedule;
use racelab_lang::ir::Program;
use racelab_real::backend::db::forced::{forced_replay, DbForced};
use racelab_real::backend::db::DbSpec;

mod connections_and_resets;
mod person;

const PERSON: &str = include_str!("../../../../../scenarios/patchwork-person.race");
const DEADLOCK: &str = include_str!("../../../../../scenarios/patchwork-deadlock-1213.race");
const LAUNCHPAD: &str = include_str!("../../../../../scenarios/launchpad-readonly-switch.race");

fn program(file: &str, src: &str, variant: &str) -> Arc<Program> {
    let sc = racelab_core::lang::compile(file, src).expect("compiles");
    Arc::new(sc.variant(variant).expect("variant").clone())
}

fn person(variant: &str) -> Arc<Program> {
    program(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scenarios/patchwork-person.race"
        ),
        PERSON,
        variant,
    )
}

fn deadlock(variant: &str) -> Arc<Program> {
    program("patchwork-deadlock-1213.race", DEADLOCK, variant)
}

fn launchpad(variant: &str) -> Arc<Program> {
    program("launchpad-readonly-switch.race", LAUNCHPAD, variant)
}

fn server(var: &str, name: &str) -> DbSpec {
    match DbSpec::parse(name) {
        Ok(spec) => spec,
        Err(why) => panic!("{why}\n(these tests need real servers: run `eval \"$(cargo xtask db up --env)\"` first, or set {var})"),
    }
}

fn postgres() -> DbSpec {
    server("RACELAB_POSTGRES_URL", "postgres")
}

fn mariadb() -> DbSpec {
    server("RACELAB_MARIADB_URL", "mariadb")
}

/// The model's token for `target` (loom finds it deterministically on two actors).
fn model_token(prog: &Arc<Program>, target: &str) -> Schedule {
    let ex = explore(
        prog,
        &EngineConfig::new(
            EngineKind::Loom,
            Budget::new(50_000, Duration::from_secs(60)),
        ),
    )
    .expect("loom runs");
    ex.findings
        .iter()
        .find(|f| f.invariant == target)
        .unwrap_or_else(|| panic!("loom did not find {target}"))
        .schedule
        .clone()
}

/// A whole schedule of the model, choosing at each step with `pick` among the runnable actors.
fn model_schedule(prog: &Arc<Program>, mut pick: impl FnMut(&[usize]) -> usize) -> Schedule {
    let mut m = Machine::new(Arc::clone(prog));
    let mut steps = Vec::new();
    while !m.is_finished() {
        let runnable: Vec<usize> = (0..prog.actors.len())
            .filter(|&a| m.is_runnable(a))
            .collect();
        assert!(!runnable.is_empty(), "the model is stuck");
        let a = runnable[pick(&runnable) % runnable.len()];
        m.step(a);
        steps.push(a as u8);
    }
    Schedule::of(prog, None, steps)
}

/// Round robin: both parsers SELECT before either INSERTs, the window of the race.
fn round_robin(prog: &Arc<Program>) -> Schedule {
    let mut turn = 0usize;
    model_schedule(prog, |r| {
        turn += 1;
        turn % r.len().max(1)
    })
}

fn force(prog: &Arc<Program>, sched: &Schedule, spec: &DbSpec) -> DbForced {
    forced_replay(prog, sched, spec)
        .unwrap_or_else(|e| panic!("{} on {}: {e}", prog.variant, spec.name()))
}

/// The results column of the trace, for asserting what the real server said.
fn results(r: &DbForced) -> Vec<String> {
    r.trace
        .steps
        .iter()
        .map(|s| format!("{} {}", s.operation, s.result))
        .collect()
}
