//! Faults land exactly where the schedule says: crash, stall and signal, step by step.
//!
//! Each test replays hand-written schedules in which a fault lands at different step
//! boundaries, and checks what the world shows afterwards. If a fault were injected anywhere but
//! where the token puts it (or not at all), the logs, times or trace rows would differ.

use std::sync::Arc;
use std::time::Duration;

use racelab_core::explore::{explore, Budget, EngineConfig, EngineKind};
use racelab_core::model::Machine;
use racelab_core::replay::replay;
use racelab_core::schedule::{Schedule, TokenError};
use racelab_lang::ir::Program;

const FAULTS: &str = r#"
scenario faults {
  about "a worker logs its progress; faults hit it at different steps"
  source "racelab's own fault tests"
  log events
  proc handler(tag) {
    append events "handler {tag}"
    exit
  }
  proc handler_returns(tag) {
    append events "handler {tag}"
  }
  proc install() {}
  actor worker {
    install()
    append events "one"
    append events "two"
    work 10s
    append events "three"
  }
  actor clock {
    sleep 1s
    append events "tick"
  }
  variant none {
    expect holds
  }
  variant crash {
    fault kill: crash worker
    expect holds
  }
  variant stall {
    fault pause: stall worker for 5s
    expect holds
  }
  variant signal-default {
    fault term: signal worker TERM
    expect holds
  }
  variant signal-handler {
    proc install() { on TERM call handler("bye") }
    fault term: signal worker TERM
    expect holds
  }
  variant signal-returns {
    proc install() { on TERM call handler_returns("back") }
    fault term: signal worker TERM then kill after 3s
    expect holds
  }
}
"#;

const WORKER: u8 = 0;
const CLOCK: u8 = 1;
/// The first (and only) fault's choice: it comes after the two actors.
const FAULT: u8 = 2;

fn program(variant: &str) -> Arc<Program> {
    let sc = racelab_core::lang::compile("faults.race", FAULTS)
        .unwrap_or_else(|e| panic!("{}", racelab_core::lang::render_plain(&e)));
    Arc::new(sc.variant(variant).expect("variant").clone())
}

fn schedule(prog: &Program, steps: &[u8]) -> Schedule {
    Schedule::of(prog, None, steps.to_vec())
}

/// Runs `steps`, then lets every actor finish in index order, and returns the final machine.
fn run(prog: &Arc<Program>, steps: &[u8]) -> Machine {
    let mut m = Machine::new(Arc::clone(prog));
    m.record_details();
    for &c in steps {
        assert!(
            m.is_runnable(c as usize),
            "choice {c} is not runnable after {:?}",
            m.schedule()
        );
        m.step(c as usize);
    }
    while !m.is_finished() {
        let next = (0..m.actor_count())
            .find(|&a| m.is_runnable(a))
            .expect("an actor can run");
        m.step(next);
    }
    m
}

fn events(m: &Machine) -> Vec<String> {
    m.log("events")
        .expect("log")
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn a_crash_stops_the_actor_exactly_at_the_step_the_schedule_names() {
    let prog = program("crash");
    assert_eq!(events(&run(&prog, &[WORKER, FAULT])), ["one", "tick"]);
    assert_eq!(
        events(&run(&prog, &[WORKER, WORKER, FAULT])),
        ["one", "two", "tick"]
    );
    assert_eq!(events(&run(&prog, &[FAULT])), ["tick"]);
    // Not landing it at all: the worker finishes.
    assert_eq!(events(&run(&prog, &[])), ["one", "two", "tick", "three"]);
}

#[test]
fn a_crash_in_a_token_replays_at_its_step_and_shows_in_the_trace() {
    let prog = program("crash");
    let r = replay(&prog, &schedule(&prog, &[WORKER, WORKER, FAULT, CLOCK])).expect("fits");
    let row = &r.trace.steps[2];
    assert!(row.operation.starts_with("FAULT"), "{row:?}");
    assert_eq!(row.actor, Some(0), "the fault shows in the worker's column");
    assert!(row.result.contains("crashed"), "{row:?}");
    // After the crash the worker cannot take a step: a token saying otherwise does not fit.
    match replay(&prog, &schedule(&prog, &[WORKER, FAULT, WORKER])) {
        Err(TokenError::Diverged {
            step: 3, actor: 0, ..
        }) => {}
        other => panic!("expected a divergence at step 3, got {other:?}"),
    }
    // A fault lands at most once.
    match replay(&prog, &schedule(&prog, &[FAULT, CLOCK, FAULT])) {
        Err(TokenError::Diverged {
            step: 3,
            actor: 2,
            why,
        }) => assert!(why.contains("kill"), "{why}"),
        other => panic!("expected a divergence at step 3, got {other:?}"),
    }
}

#[test]
fn a_stall_delays_the_actor_by_its_duration_from_where_it_lands() {
    let prog = program("stall");
    // Stalled after "one": "two" comes 5 s later, after the clock's tick at 1 s.
    let m = run(&prog, &[WORKER, FAULT]);
    assert_eq!(events(&m), ["one", "tick", "two", "three"]);
    let two = m
        .details()
        .iter()
        .find(|d| d.result == "ok" && d.actor == 0 && d.time_ms > racelab_core::model::EPOCH_MS)
        .expect("a later worker step");
    assert_eq!(two.time_ms - racelab_core::model::EPOCH_MS, 5_000);
    // Stalled during the 10 s of work: the work ends at 15 s instead of 10 s.
    let m = run(&prog, &[WORKER, WORKER, WORKER, FAULT]);
    assert_eq!(events(&m), ["one", "two", "tick", "three"]);
    assert_eq!(m.now() - racelab_core::model::EPOCH_MS, 15_000);
    // Not landing it: the work ends at 10 s.
    assert_eq!(
        run(&prog, &[]).now() - racelab_core::model::EPOCH_MS,
        10_000
    );
}

#[test]
fn a_signal_without_a_handler_kills_where_it_lands() {
    let prog = program("signal-default");
    assert_eq!(events(&run(&prog, &[WORKER, FAULT])), ["one", "tick"]);
    // Landing during the 10 s of work: "three" never comes.
    assert_eq!(
        events(&run(&prog, &[WORKER, WORKER, WORKER, FAULT])),
        ["one", "two", "tick"]
    );
}

#[test]
fn a_signal_handler_runs_at_the_next_step_boundary_after_the_signal() {
    let prog = program("signal-handler");
    // The handler's append is the worker's very next step; `exit` ends the worker.
    let m = run(&prog, &[WORKER, FAULT, WORKER]);
    assert_eq!(events(&m), ["one", "handler bye", "tick"]);
    let m = run(&prog, &[WORKER, WORKER, FAULT, WORKER]);
    assert_eq!(events(&m), ["one", "two", "handler bye", "tick"]);
    // Installing a handler is not a step, so it is in place before the worker's first step.
    let m = run(&prog, &[FAULT, WORKER]);
    assert_eq!(events(&m), ["handler bye", "tick"]);
}

#[test]
fn a_handler_that_returns_resumes_the_work_and_the_follow_up_sigkill_lands_3s_later() {
    let prog = program("signal-returns");
    // The signal lands during the 10 s of work (at 0 s): the handler runs, the work resumes,
    // and SIGKILL arrives at 3 s, before the work would end at 10 s.
    let m = run(&prog, &[WORKER, WORKER, WORKER, FAULT, WORKER]);
    assert_eq!(events(&m), ["one", "two", "handler back", "tick"]);
    let kill = m
        .details()
        .iter()
        .find(|d| d.result.contains("SIGKILL"))
        .expect("the follow-up kill is in the trace");
    assert_eq!(kill.time_ms - racelab_core::model::EPOCH_MS, 3_000);
    assert_eq!(kill.actor, 0);
}

#[test]
fn every_engine_explores_fault_placements_and_its_tokens_replay() {
    // A violation that only a crash between "one" and "two" produces.
    let src = FAULTS.replace("  variant none {", "  invariant both_or_none: at end count(events, \"one\") == count(events, \"two\")\n  variant none {")
        .replace("    fault kill: crash worker\n    expect holds", "    fault kill: crash worker\n    expect violates both_or_none");
    let sc = racelab_core::lang::compile("faults.race", &src)
        .unwrap_or_else(|e| panic!("{}", racelab_core::lang::render_plain(&e)));
    let prog = Arc::new(sc.variant("crash").expect("variant").clone());
    for kind in EngineKind::ALL {
        let ex = explore(
            &prog,
            &EngineConfig::new(kind, Budget::new(20_000, Duration::from_secs(30))),
        )
        .expect("runs");
        let f = ex
            .findings
            .iter()
            .find(|f| f.invariant == "both_or_none")
            .unwrap_or_else(|| panic!("{} did not find the crash", kind.name()));
        assert!(
            f.schedule.steps.contains(&FAULT),
            "{}: the token records the fault",
            kind.name()
        );
        let token = f.schedule.encode();
        let r = replay(&prog, &Schedule::decode(&token).expect("decodes")).expect("fits");
        assert!(r.reproduced(&f.schedule));
        let at = f
            .schedule
            .steps
            .iter()
            .position(|&c| c == FAULT)
            .expect("fault");
        assert!(
            r.trace.steps[at].operation.starts_with("FAULT"),
            "{}: {:?}",
            kind.name(),
            r.trace.steps[at]
        );
    }
    // Without the fault the same invariant holds in every schedule.
    let clean = Arc::new(sc.variant("none").expect("variant").clone());
    let ex = explore(
        &clean,
        &EngineConfig::new(
            EngineKind::ShuttleDfs,
            Budget::new(20_000, Duration::from_secs(30)),
        ),
    )
    .expect("runs");
    assert!(ex.exhaustive && ex.findings.is_empty(), "{:?}", ex.findings);
}
