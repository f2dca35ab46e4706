//! Isolation levels, model against real servers: the model's schedules forced step by step on
//! PostgreSQL and MariaDB agree, and free-running stress on the servers breaks an invariant
//! exactly where the model finds a violation. Django's get_or_create() in a transaction at
//! InnoDB's default REPEATABLE READ (and at READ COMMITTED), write skew at PostgreSQL's
//! REPEATABLE READ (broken) and SERIALIZABLE (40001), 40001 on a concurrent update, and one
//! case where PostgreSQL's coarser SSI locks abort a transaction the model lets commit; and
//! SQLite's one writer: get_or_create() in a DEFERRED transaction locked out, BEGIN IMMEDIATE not.
//!
//! Servers come from `$RACELAB_POSTGRES_URL` / `$RACELAB_MARIADB_URL` (`cargo xtask db up`).

use std::sync::Arc;
use std::time::Duration;

use racelab_core::explore::{explore, Budget, EngineConfig, EngineKind};
use racelab_core::model::Machine;
use racelab_core::schedule::Schedule;
use racelab_lang::ir::Program;
use racelab_real::backend::db::forced::{forced_replay, DbForced};
use racelab_real::backend::db::stress::stress;
use racelab_real::backend::db::DbSpec;

const PERSON_INNODB: &str = include_str!("../../../../scenarios/patchwork-person-innodb.race");

/// Django 2.0's fix for patchwork-person-innodb: the connection at READ COMMITTED.
fn person_innodb_read_committed() -> Arc<Program> {
    program(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scenarios/patchwork-person-innodb.race"
        ),
        PERSON_INNODB,
        "read-committed",
    )
}

/// Two doctors on call; each goes off call if it sees two on call (the classic write skew).
/// `LEVEL` is replaced per variant; the serializable variant handles 40001 by giving up.
const DOCTORS: &str = r#"
scenario doctors {
  database {
    "CREATE TABLE doctor (id INTEGER PRIMARY KEY, name TEXT NOT NULL, on_call BOOLEAN NOT NULL)"
    "INSERT INTO doctor (id, name, on_call) VALUES (1, 'alice', TRUE), (2, 'bob', TRUE)"
  }
  proc go_off_call(me) {
    sql("BEGIN ISOLATION LEVEL REPEATABLE READ")
    let n = first(sql("SELECT COUNT(*) FROM doctor WHERE on_call = TRUE"))
    if n >= 2 {
      sql("UPDATE doctor SET on_call = FALSE WHERE id = ?", me)
    }
    sql("COMMIT")
  }
  actor alice { go_off_call(1) }
  actor bob { go_off_call(2) }
  invariant someone_on_call: at end first(sql("SELECT COUNT(*) FROM doctor WHERE on_call = TRUE")) >= 1

  variant repeatable-read { expect violates someone_on_call }

  variant serializable {
    proc go_off_call(me) {
      sql("BEGIN ISOLATION LEVEL SERIALIZABLE")
      let n = first(sql("SELECT COUNT(*) FROM doctor WHERE on_call = TRUE"))
      if n >= 2 {
        match sql("UPDATE doctor SET on_call = FALSE WHERE id = ?", me) {
          ok                    => {}
          err(OperationalError) => {}
        }
      }
      match sql("COMMIT") {
        ok                    => {}
        err(OperationalError) => {}
      }
    }
    expect holds
  }

  # Each reads only its own row and writes only its own row: no rw-antidependency between
  # the rows. `id + 0` keeps PostgreSQL off the primary key index: it reads by sequential scan
  # and SIREAD-locks the whole table, so it still sees a write skew.
  variant disjoint-serializable {
    proc go_off_call(me) {
      sql("BEGIN ISOLATION LEVEL SERIALIZABLE")
      let mine = first(sql("SELECT on_call FROM doctor WHERE id + 0 = ?", me))
      if mine == true {
        match sql("UPDATE doctor SET on_call = FALSE WHERE id = ?", me) {
          ok                    => {}
          err(OperationalError) => {}
        }
      }
      match sql("COMMIT") {
        ok                    => {}
        err(OperationalError) => {}
      }
    }
    expect violates someone_on_call
  }

  # Both update the same row at REPEATABLE READ after taking their snapshots: the second
  # UPDATE waits for the first transaction, then fails with 40001; the loser gives up.
  variant lost-update-refused {
    proc go_off_call(me) {
      sql("BEGIN ISOLATION LEVEL REPEATABLE READ")
      let n = first(sql("SELECT COUNT(*) FROM doctor WHERE on_call = TRUE"))
      match sql("UPDATE doctor SET name = 'busy' WHERE id = 1") {
        ok                    => {}
        err(OperationalError) => {}
      }
      sql("COMMIT")
    }
    expect holds
  }
}
"#;

fn program(file: &str, src: &str, variant: &str) -> Arc<Program> {
    let sc = racelab_core::lang::compile(file, src)
        .unwrap_or_else(|e| panic!("{}", racelab_core::lang::diag::render_plain(&e)));
    Arc::new(
        sc.variant(variant)
            .unwrap_or_else(|| panic!("no variant {variant}"))
            .clone(),
    )
}

fn server(name: &str) -> DbSpec {
    DbSpec::parse(name).unwrap_or_else(|why| panic!("{why}\n(these tests need real servers: run `eval \"$(cargo xtask db up --env)\"` first)"))
}

/// The model's finding for `target` (exhaustive DFS), or `None` when the model says it holds.
fn model_finding(prog: &Arc<Program>, target: &str) -> Option<Schedule> {
    let ex = explore(
        prog,
        &EngineConfig::new(
            EngineKind::NativeDfs,
            Budget::new(50_000, Duration::from_secs(60)),
        ),
    )
    .expect("native-dfs runs");
    assert!(
        ex.exhaustive || !ex.findings.is_empty(),
        "{}: the model's search was not exhaustive",
        prog.variant
    );
    ex.findings
        .iter()
        .find(|f| f.invariant == target)
        .map(|f| f.schedule.clone())
}

/// Every actor in turn: each transaction's first statements run before the other commits.
fn round_robin(prog: &Arc<Program>) -> Schedule {
    let mut m = Machine::new(Arc::clone(prog));
    let (mut steps, mut turn) = (Vec::new(), 0usize);
    while !m.is_finished() {
        let runnable: Vec<usize> = (0..prog.actors.len())
            .filter(|&a| m.is_runnable(a))
            .collect();
        assert!(!runnable.is_empty(), "the model is stuck");
        turn += 1;
        let a = runnable[turn % runnable.len()];
        m.step(a);
        steps.push(a as u8);
    }
    Schedule::of(prog, None, steps)
}

/// `alternate` steps taken in turn, then each actor runs to its end, the first one first.
fn alternate_then_in_order(prog: &Arc<Program>, alternate: usize) -> Schedule {
    let mut m = Machine::new(Arc::clone(prog));
    let mut steps = Vec::new();
    while !m.is_finished() {
        let runnable: Vec<usize> = (0..prog.actors.len())
            .filter(|&a| m.is_runnable(a))
            .collect();
        assert!(!runnable.is_empty(), "the model is stuck");
        let a = if steps.len() < alternate {
            runnable[steps.len() % runnable.len()]
        } else {
            runnable[0]
        };
        m.step(a);
        steps.push(a as u8);
    }
    Schedule::of(prog, None, steps)
}

fn results(r: &DbForced) -> Vec<String> {
    r.trace
        .steps
        .iter()
        .map(|s| format!("{} {}", s.operation, s.result))
        .collect()
}

/// Forces `sched` and asserts that the server agreed with the model at every step.
fn agrees(prog: &Arc<Program>, sched: &Schedule, spec: &DbSpec) -> DbForced {
    let r = forced_replay(prog, sched, spec)
        .unwrap_or_else(|e| panic!("{} on {}: {e}", prog.variant, spec.name()));
    assert_eq!(
        r.divergence,
        None,
        "{} on {}: {:#?}",
        prog.variant,
        spec.name(),
        results(&r)
    );
    r
}

/// How many of `runs` free runs on the server broke `invariant`.
fn stress_hits(prog: &Arc<Program>, spec: &DbSpec, runs: u64, invariant: &str) -> u64 {
    let s = stress(prog, spec, runs, 2, 11)
        .unwrap_or_else(|e| panic!("{} on {}: {e}", prog.variant, spec.name()));
    s.rates
        .iter()
        .find(|r| r.invariant == invariant)
        .map_or(0, |r| r.hits)
}

#[test]
fn mariadb_get_or_create_in_a_transaction_loses_the_mail_at_repeatable_read_as_the_model_says() {
    let spec = server("mariadb");
    let prog = program(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scenarios/patchwork-person-innodb.race"
        ),
        PERSON_INNODB,
        "get-or-create-in-a-transaction",
    );
    let sched = model_finding(&prog, "no_mail_lost").expect("the model finds the lost mail");
    let r = agrees(&prog, &sched, &spec);
    assert!(r.reproduced(&sched), "{:#?}", results(&r));
    assert_eq!(r.env.isolation_level, "repeatable read");
    // The retry SELECT after the real 1062 reads the old snapshot: [] on MariaDB too.
    let all = results(&r);
    let dup = all
        .iter()
        .position(|s| s.contains("(1062"))
        .unwrap_or_else(|| panic!("no 1062 in {all:#?}"));
    assert!(
        all[dup + 1..]
            .iter()
            .any(|s| s.starts_with("sql(\"SELECT id FROM person") && s.ends_with(" []")),
        "{all:#?}"
    );
    assert!(
        stress_hits(&prog, &spec, 20, "no_mail_lost") > 0,
        "MariaDB never lost the mail in 20 free runs"
    );
}

const DEADLOCK: &str = include_str!("../../../../scenarios/patchwork-deadlock-1213.race");

/// InnoDB READ COMMITTED takes no gap locks: Patchwork's save() no longer deadlocks, on the
/// model and on MariaDB (forced along the model's schedules, and free-running), while at the
/// default REPEATABLE READ the same code gets real 1213s.
#[test]
fn mariadb_save_at_read_committed_takes_no_gap_locks_as_the_model_says() {
    let spec = server("mariadb");
    let rc = program(
        "patchwork-deadlock-1213.race",
        DEADLOCK,
        "save-read-committed",
    );
    assert_eq!(
        model_finding(&rc, "no_mail_lost"),
        None,
        "the model says save-read-committed holds"
    );
    for sched in [round_robin(&rc), alternate_then_in_order(&rc, 0)] {
        let r = agrees(&rc, &sched, &spec);
        let all = results(&r);
        assert!(
            r.broken.is_empty()
                && !all
                    .iter()
                    .any(|s| s.contains("1213") || s.contains("<waiting")),
            "{all:#?}"
        );
    }
    assert_eq!(stress_hits(&rc, &spec, 20, "no_mail_lost"), 0);
    let rr = program("patchwork-deadlock-1213.race", DEADLOCK, "save");
    assert!(model_finding(&rr, "no_mail_lost").is_some());
    assert!(
        stress_hits(&rr, &spec, 30, "no_mail_lost") > 0,
        "MariaDB at REPEATABLE READ never deadlocked in 30 free runs"
    );
}

/// get_or_create() at READ COMMITTED (Django 2.0's fix): the retry SELECT sees the winner's row.
/// Forced where both SELECT first and then the winner commits before the loser INSERTs: the
/// loser's INSERT meets a committed row and never waits .
#[test]
fn mariadb_get_or_create_at_read_committed_holds_as_the_model_says() {
    let spec = server("mariadb");
    let prog = person_innodb_read_committed();
    assert_eq!(
        model_finding(&prog, "no_mail_lost"),
        None,
        "the model says read-committed holds"
    );
    let r = agrees(&prog, &alternate_then_in_order(&prog, 6), &spec);
    assert!(r.broken.is_empty(), "{:?}: {:#?}", r.broken, results(&r));
    // The race really ran: the loser's INSERT met the winner's row, and its retry found it.
    assert!(
        results(&r).iter().any(|s| s.contains("(1062")),
        "{:#?}",
        results(&r)
    );
    assert!(
        r.env
            .isolation_level
            .contains("read committed (set by the scenario)"),
        "{:?}",
        r.env
    );
    // Free runs, where the loser's INSERT does wait for the winner's uncommitted row: every wait
    // is seen (no statement runs into racelab's 30 s limit) and no mail is lost.
    let s = stress(&prog, &spec, 40, 2, 11)
        .unwrap_or_else(|e| panic!("read-committed on MariaDB: {e}"));
    for rate in &s.rates {
        assert_eq!(
            rate.hits, 0,
            "{} broke in {} of 40 free runs",
            rate.invariant, rate.hits
        );
    }
}

#[test]
fn postgres_write_skew_breaks_at_repeatable_read_and_is_refused_at_serializable() {
    let spec = server("postgres");
    let rr = program("doctors.race", DOCTORS, "repeatable-read");
    let sched = model_finding(&rr, "someone_on_call").expect("the model finds the write skew");
    let r = agrees(&rr, &sched, &spec);
    assert!(r.reproduced(&sched), "{:#?}", results(&r));
    assert!(
        stress_hits(&rr, &spec, 40, "someone_on_call") > 0,
        "PostgreSQL never showed the write skew in 40 free runs"
    );

    let ser = program("doctors.race", DOCTORS, "serializable");
    assert_eq!(
        model_finding(&ser, "someone_on_call"),
        None,
        "the model says serializable holds"
    );
    // The schedule of the write skew: both read before either writes; the server refuses the
    // second COMMIT with 40001 exactly where the model does.
    let r = agrees(&ser, &round_robin(&ser), &spec);
    assert!(r.broken.is_empty(), "{:?}", r.broken);
    let all = results(&r);
    assert!(all.iter().any(|s| s.starts_with("sql(\"COMMIT\")") && s.contains("OperationalError could not serialize access due to read/write dependencies among transactions")), "{all:#?}");
    assert_eq!(stress_hits(&ser, &spec, 40, "someone_on_call"), 0);
}

#[test]
fn postgres_repeatable_read_refuses_the_concurrent_update_with_40001() {
    let spec = server("postgres");
    let prog = program("doctors.race", DOCTORS, "lost-update-refused");
    let r = agrees(&prog, &round_robin(&prog), &spec);
    let all = results(&r);
    assert!(
        all.iter().any(|s| s.contains("<waiting")),
        "the second UPDATE waits first: {all:#?}"
    );
    assert!(
        all.iter()
            .any(|s| s
                .contains("OperationalError could not serialize access due to concurrent update")),
        "{all:#?}"
    );
}

/// Where the model and PostgreSQL part: the model's exact predicates see no conflict between
/// two transactions that each read and write only their own row, while PostgreSQL, reading by
/// sequential scan, SIREAD-locks the whole table and refuses the second COMMIT (a false
/// positive its documentation allows). The replay says so at that step.
#[test]
fn postgres_ssi_is_coarser_than_the_model_on_a_sequential_scan() {
    let spec = server("postgres");
    let prog = program("doctors.race", DOCTORS, "disjoint-serializable");
    let r = forced_replay(&prog, &round_robin(&prog), &spec).expect("replays");
    let d = r
        .divergence
        .clone()
        .unwrap_or_else(|| panic!("PostgreSQL agreed with the model: {:#?}", results(&r)));
    assert_eq!(d.operation, "sql(\"COMMIT\")", "{d:?}");
    assert_eq!(
        (d.model.as_str(), d.real.as_str()),
        ("ok", "OperationalError"),
        "{d:?}"
    );
}

const PERSON_SQLITE: &str = include_str!("../../../../scenarios/patchwork-person-sqlite.race");

/// SQLite needs no server, so this comparison runs everywhere: Django's get_or_create() in a
/// DEFERRED transaction loses the mail with "database is locked" on the model and on real SQLite
/// (forced along the model's schedule, and free-running); BEGIN IMMEDIATE holds on both.
#[test]
fn sqlite_get_or_create_in_a_transaction_is_locked_out_as_the_model_says() {
    let spec = DbSpec::Sqlite;
    let prog = program(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scenarios/patchwork-person-sqlite.race"
        ),
        PERSON_SQLITE,
        "get-or-create-in-a-transaction",
    );
    let sched = model_finding(&prog, "no_mail_lost").expect("the model finds the lost mail");
    let r = agrees(&prog, &sched, &spec);
    assert!(r.reproduced(&sched), "{:#?}", results(&r));
    let all = results(&r);
    assert!(
        all.iter().any(|s| s.contains("database is locked")),
        "no SQLITE_BUSY in {all:#?}"
    );
    assert!(
        stress_hits(&prog, &spec, 40, "no_mail_lost") > 0,
        "SQLite never lost the mail in 40 free runs"
    );

    let fixed = program(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scenarios/patchwork-person-sqlite.race"
        ),
        PERSON_SQLITE,
        "begin-immediate",
    );
    assert_eq!(model_finding(&fixed, "no_mail_lost"), None);
    // The schedule that loses the mail above, as far as it fits the fix: every actor in turn.
    agrees(&fixed, &round_robin(&fixed), &spec);
    assert_eq!(stress_hits(&fixed, &spec, 40, "no_mail_lost"), 0);
}
