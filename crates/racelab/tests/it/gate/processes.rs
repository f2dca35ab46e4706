//! Gated processes: how they end (exit, death, hang, exit 77, cannot start), a lost update
//! found and replayed through the gate, and what the command line refuses.

use std::time::Duration;

use racelab_core::schedule::{Schedule, TokenError};
use racelab_real::gate::explore::{explore, replay, GateBudget, Strategy};
use racelab_real::gate::run::execute;

use super::{processes_mentioning, racelab, setup, Lowest};

const ENDINGS: &str = r#"
scenario endings {
  gate "sh $SCENARIO_DIR/prog.sh $INDEX $ROOT"
  actor p x 3 {
    write("/f", "x")
  }
  expect holds
}
"#;

/// Actor 0 exits with status 3, actor 1 dies of SIGSEGV, actor 2 spins without a system call.
const PROG: &str = r#"echo start > "$2/f$1"
case $1 in
  0) exit 3 ;;
  1) kill -SEGV $$ ;;
  2) while :; do :; done ;;
esac
"#;

#[test]
fn a_gated_process_that_exits_dies_or_hangs_is_reported_and_reaped() {
    let (dir, progs, mut opts) = setup(ENDINGS, &[("prog.sh", PROG)]);
    opts.step_timeout = Duration::from_secs(1);
    let exec = execute(&progs[0], &opts, &mut Lowest).expect("the run itself works");
    let messages: Vec<String> = exec
        .broken
        .iter()
        .map(|b| format!("{}: {}", b.invariant, b.message))
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("unhandled_error") && m.contains("p1 exited with status 3")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("deadlock") && m.contains("p3 made no gated call")),
        "{messages:#?}"
    );
    // The SIGSEGV is the second unhandled error of the run: each invariant is reported the first
    // time it breaks, so it shows in the step table instead.
    assert!(
        exec.trace
            .iter()
            .any(|s| s.actor == Some(1) && s.result.contains("SIGSEGV")),
        "{:#?}",
        exec.trace
    );
    assert!(
        processes_mentioning(dir.path()).is_empty(),
        "left behind: {:?}",
        processes_mentioning(dir.path())
    );
    // Every run directory is gone too.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read the dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("racelab-gate-"))
        .collect();
    assert!(left.is_empty(), "run directories left: {left:?}");
}

#[test]
fn a_program_that_cannot_start_is_an_infrastructure_error_that_says_why() {
    let scenario = "scenario nothing {\n  gate \"/nonexistent/racelab-no-such-program\"\n  actor a {\n    write(\"/f\", \"x\")\n  }\n  expect holds\n}\n";
    let (dir, progs, opts) = setup(scenario, &[]);
    let err = execute(&progs[0], &opts, &mut Lowest).expect_err("no program, no run");
    assert!(
        err.message()
            .contains("cannot run `/nonexistent/racelab-no-such-program`"),
        "{err}"
    );
    assert_eq!(err.kind(), racelab_core::error::ErrorKind::Infrastructure);
    assert!(processes_mentioning(dir.path()).is_empty());
}

#[test]
fn a_program_that_exits_77_before_its_first_gated_call_is_a_skipped_row_with_its_reason() {
    // A driver whose pinned release the registries here cannot build exits 77 (automake's
    // skip) with the reason; any other early exit stays an error. Neither is ever a pass.
    let scenario = |status: i32| {
        format!(
            "scenario early {{\n  gate \"sh $SCENARIO_DIR/early.sh {status}\"\n  actor a {{\n    write(\"/f\", \"x\")\n  }}\n  expect violates unhandled_error\n}}\n"
        )
    };
    let script =
        "echo 'libfoo 1.0 cannot be installed here: ImportError: no Iterable' >&2\nexit $1\n";
    let explore_early = |status: i32| {
        let (dir, progs, opts) = setup(&scenario(status), &[("early.sh", script)]);
        let row = racelab_real::gate::report::explore_row(
            "early",
            &progs[0],
            &opts,
            Strategy::Random,
            GateBudget {
                executions: 5,
                seconds: 60.0,
            },
            1,
            &mut |_, _| {},
        );
        assert!(processes_mentioning(dir.path()).is_empty());
        row
    };
    let skipped = explore_early(racelab_real::gate::SKIP_STATUS);
    assert_eq!(skipped.outcome, reports::Outcome::Skipped, "{skipped:?}");
    assert!(!skipped.met);
    let reason = skipped.reason.unwrap_or_default();
    assert!(
        reason.contains("exited 77 before its first gated call")
            && reason.contains("libfoo 1.0 cannot be installed here: ImportError: no Iterable"),
        "{reason}"
    );
    let failed = explore_early(1);
    assert_eq!(failed.outcome, reports::Outcome::Error, "{failed:?}");
    assert!(
        failed
            .reason
            .unwrap_or_default()
            .contains("ended before its first gated call"),
        "an early exit 1 is the setup's fault, not a skip"
    );
}

const COUNTER: &str = r#"
scenario counter {
  fs { file "/counter" = "0" }
  gate "sh $SCENARIO_DIR/inc.sh"
  actor inc x 2 {
    let n = 0
    match read("/counter") {
      ok(s)       => n = int(s)
      err(ENOENT) => {}
    }
    write("/counter", "{n + 1}")
  }
  invariant no_lost_update: at end int(read("/counter")) == 2
  expect violates no_lost_update
}
"#;

/// Read, add one, write back: no lock.
const INC: &str =
    "read n < \"$RACELAB_ROOT/counter\"\necho $((n + 1)) > \"$RACELAB_ROOT/counter\"\n";

#[test]
fn a_lost_update_found_through_the_gate_replays_and_tokens_stay_on_their_side() {
    let (_dir, progs, opts) = setup(COUNTER, &[("inc.sh", INC)]);
    let prog = &progs[0];
    let want = vec!["no_lost_update".to_string()];
    let ex = explore(
        prog,
        &opts,
        Strategy::Random,
        GateBudget {
            executions: 200,
            seconds: 120.0,
        },
        &want,
        7,
        &mut |_, _| {},
    )
    .expect("explore through the gate");
    let f = ex
        .findings
        .iter()
        .find(|f| f.invariant == "no_lost_update")
        .unwrap_or_else(|| {
            panic!(
                "two unlocked read-modify-writes lose an update in {} executions",
                ex.executions
            )
        });
    // The token round-trips and replays, every time.
    let token = f.original.encode();
    let sched = Schedule::decode(&token).expect("the token decodes");
    for _ in 0..3 {
        let exec = replay(prog, &opts, &sched).expect("replay through the gate");
        assert!(
            exec.broke("no_lost_update"),
            "the replay did not reproduce: {:#?}",
            exec.trace
        );
    }
    // The model finds the same race; its token is not a gate token, nor the other way round.
    let model = racelab_core::explore::explore(
        &std::sync::Arc::new(prog.clone()),
        &racelab_core::explore::EngineConfig::new(
            racelab_core::explore::EngineKind::NativeDfs,
            racelab_core::explore::Budget::new(10_000, Duration::from_secs(30)),
        ),
    )
    .expect("the model explores");
    let model_finding = model
        .findings
        .iter()
        .find(|f| f.invariant == "no_lost_update")
        .expect("the model loses the update too");
    let model_sched = model_finding.schedule.clone();
    let err = replay(prog, &opts, &model_sched).expect_err("a model token is no gate token");
    assert!(err.message().contains("recorded on the model"), "{err}");
    assert_eq!(err.exit_code(), 2, "a token from elsewhere is bad input");
    assert_eq!(sched.check_fits(prog), Err(TokenError::ThroughGate));
}

/// Two processes write their index over one file: the second must write last.
const LAST_WRITER: &str = r#"
scenario last-writer {
  gate "sh $SCENARIO_DIR/w.sh $INDEX $ROOT"
  actor w x 2 {
    write("/f", "x")
  }
  invariant second_writes_last: at end read("/f") == "1\n"
  expect violates second_writes_last
}
"#;

#[test]
fn gate_dfs_runs_every_schedule_of_a_small_program_and_says_it_ran_out() {
    let (_dir, progs, opts) = setup(LAST_WRITER, &[("w.sh", "echo $1 > \"$2/f\"\n")]);
    let prog = &progs[0];
    let run = || {
        explore(
            prog,
            &opts,
            Strategy::Dfs,
            GateBudget {
                executions: 200,
                seconds: 300.0,
            },
            &[],
            1,
            &mut |_, _| {},
        )
        .expect("explore through the gate")
    };
    let ex = run();
    assert!(
        ex.exhaustive,
        "{} executions, not exhaustive",
        ex.executions
    );
    // Each process makes two gated calls (dash's open of the redirection, then echo's write):
    // the 4!/(2!2!) interleavings, each run once.
    assert_eq!(ex.executions, 6);
    // Depth first from the lowest choice: the first schedule runs w1 whole, then w2, and holds.
    let f = ex
        .findings
        .iter()
        .find(|f| f.invariant == "second_writes_last")
        .expect("some schedule lets the first process write last");
    assert!(f.after > 1 && f.after <= ex.executions, "{}", f.after);
    let exec = replay(prog, &opts, &f.original).expect("replay through the gate");
    assert!(exec.broke("second_writes_last"), "{:#?}", exec.trace);
    // The same search again: the same schedules, so the same count and the same finding.
    let again = run();
    assert_eq!(
        (again.executions, again.findings[0].after),
        (ex.executions, f.after)
    );
}

#[test]
fn the_command_line_refuses_what_the_gate_cannot_do_and_says_what_to_do() {
    let mailman = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/mailman-lockfile.race"
    );
    let flufl = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/flufl-lock.race"
    );
    let (code, _, err) = racelab(&["explore", mailman, "--backend", "gate"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no variant names a real program") && err.contains("section 5.15"),
        "{err}"
    );
    let (code, _, err) = racelab(&["explore", flufl, "--backend", "gate", "--engine", "loom"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("use gate-random, gate-pct or all"), "{err}");
    let (code, _, err) = racelab(&[
        "explore",
        flufl,
        "--backend",
        "gate:/nonexistent/racelab-dir",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a directory"), "{err}");
    let (code, _, err) = racelab(&["explore", flufl, "--backend", "fs:/tmp"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--backend gate"), "{err}");
    // A model token, replayed through the gate: refused, with what to do instead.
    let (code, out, _) = racelab(&[
        "explore",
        flufl,
        "--variant",
        "stall",
        "--engine",
        "native-random",
        "--json",
    ]);
    assert_eq!(code, 0);
    let rows: serde_json::Value = serde_json::from_str(&out).expect("JSON rows");
    let token = rows[0]["replay"]
        .as_str()
        .expect("the model finds the stall's break")
        .to_string();
    let (code, _, err) = racelab(&[
        "replay",
        flufl,
        "--variant",
        "stall",
        "--backend",
        "gate",
        &token,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("recorded on the model"), "{err}");
}

#[test]
fn a_program_that_starts_a_process_is_refused_with_what_to_do() {
    let scenario = "scenario forks {\n  gate \"sh $SCENARIO_DIR/forks.sh\"\n  actor a {\n    write(\"/f\", \"x\")\n  }\n  expect holds\n}\n";
    let (dir, progs, opts) = setup(
        scenario,
        &[("forks.sh", "/bin/true\necho x > \"$RACELAB_ROOT/f\"\n")],
    );
    let err = execute(&progs[0], &opts, &mut Lowest).expect_err("a fork is refused");
    assert!(
        err.message().contains("started a process")
            && err.message().contains("run the child as an actor"),
        "{err}"
    );
    assert_eq!(err.kind(), racelab_core::error::ErrorKind::Refused);
    assert!(processes_mentioning(dir.path()).is_empty());
}
