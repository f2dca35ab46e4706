//! Real databases: the Patchwork scenarios forced statement by statement and stress-run on
//! SQLite, PostgreSQL and MariaDB; Launchpad's read-only switch with real connections to two
//! real databases, counted by the server.
//!
//! SQLite is compiled in. PostgreSQL and MariaDB come from `$RACELAB_POSTGRES_URL` and
//! `$RACELAB_MARIADB_URL`, which `cargo xtask db up` prints (and `.ci/run` exports): a test that
//! needs a server and finds none fails, saying how to start one; it never passes vacuously.

use std::sync::Arc;
use std::time::Duration;

use racelab_real::backend::db::forced::{forced_replay, DbForced};
use racelab_real::backend::db::stress::stress;
use racelab_real::backend::db::{translate, translate_ddl, DbSpec, Dialect};
use racelab_core::explore::{explore, Budget, EngineConfig, EngineKind};
use racelab_lang::ir::Program;
use racelab_core::model::Machine;
use racelab_core::schedule::Schedule;

const PERSON: &str = include_str!("../../../../scenarios/patchwork-person.race");
const DEADLOCK: &str = include_str!("../../../../scenarios/patchwork-deadlock-1213.race");
const LAUNCHPAD: &str = include_str!("../../../../scenarios/launchpad-readonly-switch.race");

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

fn check_then_insert_loses_a_mail(spec: &DbSpec, duplicate: &str) {
    let prog = person("check-then-insert");
    let sched = model_token(&prog, "no_mail_lost");
    let r = force(&prog, &sched, spec);
    assert_eq!(r.divergence, None, "{}: {:#?}", spec.name(), results(&r));
    assert!(
        r.reproduced(&sched),
        "{}: no_mail_lost did not break: {:#?}",
        spec.name(),
        results(&r)
    );
    let lost = r
        .broken
        .iter()
        .find(|b| b.invariant == "no_mail_lost")
        .expect("broke");
    assert!(lost.message.contains("== 2 is false"), "{lost:?}");
    // The loser's INSERT failed with the real server's duplicate-key error.
    let all = results(&r);
    assert!(
        all.iter()
            .any(|s| s.contains("IntegrityError") && s.contains(duplicate)),
        "{}: no real IntegrityError `{duplicate}` in {all:#?}",
        spec.name()
    );
}

fn get_or_create_loses_none(spec: &DbSpec) {
    let prog = person("get-or-create");
    // The schedule of the race (both SELECTs first), and 20 more the model draws at random.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut scheds = vec![round_robin(&prog)];
    for _ in 0..20 {
        scheds.push(model_schedule(&prog, |_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as usize
        }));
    }
    let mut lost_races = 0;
    for sched in &scheds {
        let r = force(&prog, sched, spec);
        assert_eq!(r.divergence, None, "{}: {:#?}", spec.name(), results(&r));
        assert!(
            r.broken.is_empty(),
            "{}: {:?} broke: {:#?}",
            spec.name(),
            r.broken,
            results(&r)
        );
        lost_races += results(&r)
            .iter()
            .filter(|s| s.contains("IntegrityError"))
            .count();
    }
    // The race was really run: some INSERT lost it and get_or_create() recovered.
    assert!(
        lost_races > 0,
        "{}: no schedule made an INSERT lose the race",
        spec.name()
    );
}

#[test]
fn placeholders_and_ddl_are_translated_per_server() {
    let sql = "SELECT a FROM t WHERE b = ? AND c = '?' AND d = %s";
    assert_eq!(
        translate(sql, Dialect::Postgres),
        (
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $2".to_string(),
            vec![0, 1]
        )
    );
    assert_eq!(
        translate(sql, Dialect::MariaDb).0,
        "SELECT a FROM t WHERE b = ? AND c = '?' AND d = ?"
    );
    assert_eq!(
        translate("UPDATE t SET a = $2 WHERE id = $1", Dialect::Sqlite),
        ("UPDATE t SET a = ? WHERE id = ?".to_string(), vec![1, 0])
    );
    let ddl = "CREATE TABLE s (id INTEGER PRIMARY KEY AUTO_INCREMENT, msgid TEXT)";
    assert_eq!(
        translate_ddl(ddl, Dialect::Postgres),
        "CREATE TABLE s (id SERIAL PRIMARY KEY, msgid TEXT)"
    );
    assert_eq!(
        translate_ddl(ddl, Dialect::Sqlite),
        "CREATE TABLE s (id INTEGER PRIMARY KEY AUTOINCREMENT, msgid TEXT)"
    );
}

#[test]
fn a_server_that_is_not_there_is_an_error_that_says_what_to_do() {
    let prog = person("check-then-insert");
    let sched = model_token(&prog, "no_mail_lost");
    let spec = DbSpec::parse("postgres=host=127.0.0.1 port=1 user=nobody connect_timeout=2")
        .expect("parses");
    let e = forced_replay(&prog, &sched, &spec)
        .expect_err("nothing listens on port 1")
        .to_string();
    assert!(
        e.contains("cannot connect to PostgreSQL") && e.contains("cargo xtask db up"),
        "{e}"
    );
    let e = DbSpec::parse("db:oracle").expect_err("unknown");
    assert!(e.contains("db:sqlite"), "{e}");
}

#[test]
fn sqlite_check_then_insert_loses_a_mail() {
    check_then_insert_loses_a_mail(&DbSpec::Sqlite, "UNIQUE constraint failed: person.email");
}

#[test]
fn sqlite_get_or_create_loses_none() {
    get_or_create_loses_none(&DbSpec::Sqlite);
}

#[test]
fn postgres_check_then_insert_loses_a_mail() {
    check_then_insert_loses_a_mail(
        &postgres(),
        "duplicate key value violates unique constraint \"person_email_key\"",
    );
}

#[test]
fn postgres_get_or_create_loses_none() {
    get_or_create_loses_none(&postgres());
}

#[test]
fn mariadb_check_then_insert_loses_a_mail() {
    check_then_insert_loses_a_mail(
        &mariadb(),
        "(1062, 'Duplicate entry 'new.contributor@example.org' for key 'email'')",
    );
}

#[test]
fn mariadb_get_or_create_loses_none() {
    get_or_create_loses_none(&mariadb());
}

/// In a transaction, the second INSERT waits in the server for the first transaction: the
/// replay sees it waiting (from pg_locks), moves on, and collects its IntegrityError later.
#[test]
fn postgres_a_statement_that_waits_in_the_server_is_blocked_then_completes() {
    let prog = person("in-a-transaction");
    let sched = model_token(&prog, "no_mail_lost");
    let r = force(&prog, &sched, &postgres());
    assert_eq!(r.divergence, None, "{:#?}", results(&r));
    assert!(r.reproduced(&sched), "{:#?}", results(&r));
    let all = results(&r);
    let waited = all
        .iter()
        .position(|s| {
            s.contains("<waiting")
                && s.contains("pg_locks: transactionid")
                && s.contains("is locked by parser")
        })
        .unwrap_or_else(|| panic!("no wait in {all:#?}"));
    let completed = all[waited + 1..]
        .iter()
        .find(|s| s.contains("<... completed>"))
        .unwrap_or_else(|| panic!("no completion in {all:#?}"));
    assert!(
        completed.contains("IntegrityError duplicate key value violates unique constraint"),
        "{completed}"
    );
    assert_eq!(r.env.isolation_level, "read committed");
    assert!(
        r.env.server_version.starts_with("PostgreSQL "),
        "{:?}",
        r.env
    );
}

/// Patchwork's Patch(...).save() on real InnoDB: the two UPDATEs of missing keys take gap
/// locks, the INSERTs wait for each other, and the server kills one with a real 1213.
#[test]
fn mariadb_save_gets_a_real_1213_and_objects_create_does_not() {
    let spec = mariadb();
    let prog = deadlock("save");
    let sched = model_token(&prog, "no_mail_lost");
    let r = force(&prog, &sched, &spec);
    let all = results(&r);
    assert_eq!(r.divergence, None, "{all:#?}");
    assert!(r.reproduced(&sched), "{all:#?}");
    assert!(all.iter().any(|s| s.contains("OperationalError (1213, 'Deadlock found when trying to get lock; try restarting transaction')")), "{all:#?}");
    assert!(
        all.iter()
            .any(|s| s.contains("<waiting> InnoDB: X RECORD lock on")),
        "{all:#?}"
    );
    assert_eq!(r.env.isolation_level, "repeatable read");

    let prog = deadlock("objects-create");
    for sched in [round_robin(&prog), model_schedule(&prog, |_| 0)] {
        let r = force(&prog, &sched, &spec);
        let all = results(&r);
        assert_eq!(r.divergence, None, "{all:#?}");
        assert!(r.broken.is_empty(), "{:?}: {all:#?}", r.broken);
        assert!(
            !all.iter()
                .any(|s| s.contains("1213") || s.contains("<waiting")),
            "{all:#?}"
        );
    }
}

/// The same statements on PostgreSQL: an UPDATE that matches no row locks nothing, so the
/// INSERTs never wait and no mail is lost. The model (InnoDB rules) said the first INSERT
/// waits: the replay reports exactly that step as a divergence.
#[test]
fn postgres_save_takes_no_gap_lock_and_diverges_from_the_innodb_model() {
    let prog = deadlock("save");
    let sched = model_token(&prog, "no_mail_lost");
    let r = force(&prog, &sched, &postgres());
    let d = r
        .divergence
        .clone()
        .unwrap_or_else(|| panic!("no divergence: {:#?}", results(&r)));
    assert!(d.operation.starts_with("sql(\"INSERT INTO patch"), "{d:?}");
    assert_eq!(
        (d.model.as_str(), d.real.as_str()),
        ("blocked", "1"),
        "{d:?}"
    );
    assert!(
        !results(&r)
            .iter()
            .any(|s| s.contains("1213") || s.contains("deadlock")),
        "{:#?}",
        results(&r)
    );
}

/// 500 free runs of two parsers = 1,000 mails: get-or-create loses none; check-then-insert,
/// run the same way, does lose mails, so the runs really race.
fn stress_person(spec: &DbSpec) {
    let fixed = stress(&person("get-or-create"), spec, 500, 2, 7)
        .unwrap_or_else(|e| panic!("{}: {e}", spec.name()));
    assert_eq!(fixed.runs, 500);
    let lost = fixed
        .rates
        .iter()
        .find(|r| r.invariant == "no_mail_lost")
        .expect("rate");
    assert_eq!(
        lost.hits,
        0,
        "{}: get-or-create lost mails: {:?}",
        spec.name(),
        fixed.rates
    );
    assert!(lost.high < 0.01, "{:?}", lost);
    let racy = stress(&person("check-then-insert"), spec, 200, 2, 7)
        .unwrap_or_else(|e| panic!("{}: {e}", spec.name()));
    let lost = racy
        .rates
        .iter()
        .find(|r| r.invariant == "no_mail_lost")
        .expect("rate");
    assert!(
        lost.hits > 0,
        "{}: check-then-insert lost no mail in 200 free runs: {:?}",
        spec.name(),
        racy.rates
    );
    assert!(racy.first_failure.is_some());
}

#[test]
fn sqlite_stress_get_or_create_loses_none_of_1000_mails() {
    stress_person(&DbSpec::Sqlite);
}

#[test]
fn postgres_stress_get_or_create_loses_none_of_1000_mails() {
    stress_person(&postgres());
}

#[test]
fn mariadb_stress_get_or_create_loses_none_of_1000_mails() {
    stress_person(&mariadb());
}

// ---------------------------------------------------- Launchpad: connections the server counts

/// shared-dsn, forced along the model's finding: a worker that saw read-only.txt keeps its
/// real connection to the read-write database, and the server's own list of sessions says so
/// at the end (PostgreSQL: pg_stat_activity; MariaDB: the process list).
fn shared_dsn_leaves_a_real_connection_to_the_master(spec: &DbSpec) {
    let prog = launchpad("shared-dsn");
    let sched = model_token(&prog, "no_rw_connections");
    let r = force(&prog, &sched, spec);
    assert_eq!(r.divergence, None, "{}: {:#?}", spec.name(), results(&r));
    assert!(
        r.reproduced(&sched),
        "{}: no_rw_connections did not break: {:#?}",
        spec.name(),
        results(&r)
    );
    let broke = r
        .broken
        .iter()
        .find(|b| b.invariant == "no_rw_connections")
        .expect("broke");
    // The count comes from the server, not from the model: one connection is left open.
    assert!(
        broke
            .message
            .contains(r#"connections("rw_main_master") = 1"#),
        "{}: {broke:?}",
        spec.name()
    );
    let all = results(&r);
    assert!(
        all.iter()
            .any(|s| s.starts_with("connect(dsn) rw_main_master#")),
        "{all:#?}"
    );
    assert!(
        all.iter()
            .any(|s| s.starts_with("connect(dsn) ro_main_master#")),
        "{all:#?}"
    );
}

/// per-thread-flag, forced along the model's round robin and 10 random schedules: every
/// worker closes its read-write connection, and the server lists none at the end.
fn per_thread_flag_leaves_none(spec: &DbSpec) {
    let prog = launchpad("per-thread-flag");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut scheds = vec![round_robin(&prog)];
    for _ in 0..10 {
        scheds.push(model_schedule(&prog, |_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as usize
        }));
    }
    for sched in &scheds {
        let r = force(&prog, sched, spec);
        assert_eq!(r.divergence, None, "{}: {:#?}", spec.name(), results(&r));
        assert!(
            r.broken.is_empty(),
            "{}: {:?} broke: {:#?}",
            spec.name(),
            r.broken,
            results(&r)
        );
        // Not vacuous: connections to the master were opened and then closed for real.
        let all = results(&r);
        assert!(
            all.iter()
                .any(|s| s.starts_with("connect(dsn) rw_main_master#")),
            "{all:#?}"
        );
        assert!(all.iter().any(|s| s.starts_with("close(conn)")), "{all:#?}");
    }
}

#[test]
fn postgres_launchpad_shared_dsn_leaves_a_connection_to_the_master_in_pg_stat_activity() {
    shared_dsn_leaves_a_real_connection_to_the_master(&postgres());
}

#[test]
fn postgres_launchpad_per_thread_flag_leaves_none() {
    per_thread_flag_leaves_none(&postgres());
}

#[test]
fn mariadb_launchpad_shared_dsn_leaves_a_connection_to_the_master_in_the_process_list() {
    shared_dsn_leaves_a_real_connection_to_the_master(&mariadb());
}

#[test]
fn mariadb_launchpad_per_thread_flag_leaves_none() {
    per_thread_flag_leaves_none(&mariadb());
}

#[test]
fn sqlite_refuses_launchpad_saying_why() {
    let prog = launchpad("shared-dsn");
    let sched = model_token(&prog, "no_rw_connections");
    let err = forced_replay(&prog, &sched, &DbSpec::Sqlite)
        .expect_err("SQLite has no server to count connections on");
    let text = err.to_string();
    assert!(
        text.contains("SQLite is a file, not a server") && text.contains("db:postgres"),
        "{text}"
    );
}

// ------------------------------------------------------------- resets between stress runs

/// Tables with server-numbered keys, one row each; nothing TRUNCATE cannot put back.
const COUNTERS: &str = r#"
scenario reset-counters {
  database {
    "CREATE TABLE item (id INTEGER PRIMARY KEY AUTO_INCREMENT, name VARCHAR(20) NOT NULL UNIQUE)"
    "CREATE TABLE tag (id INTEGER PRIMARY KEY AUTO_INCREMENT, item_id INTEGER NOT NULL)"
    "INSERT INTO item (name) VALUES ('first')"
    "INSERT INTO tag (item_id) VALUES (1)"
  }
  actor a { sql("INSERT INTO item (name) VALUES ('a')") }
  invariant one: at end first(sql("SELECT COUNT(*) FROM item")) == 2
  variant v { expect holds }
}
"#;

/// What a run sees of `backend`'s tables: a new item and a new tag numbered by the server, then
/// every row.
fn numbered_rows(backend: &Arc<dyn racelab_real::backend::db::Backend>) -> Vec<String> {
    use racelab_real::backend::db::Kind;
    let mut s = backend.connect(0).expect("connects");
    s.run("INSERT INTO item (name) VALUES ('next')", &[], Kind::Change)
        .expect("insert");
    s.run("INSERT INTO tag (item_id) VALUES (2)", &[], Kind::Change)
        .expect("insert");
    [
        "SELECT id, name FROM item ORDER BY id",
        "SELECT id, item_id FROM tag ORDER BY id",
    ]
    .iter()
    .map(|q| format!("{:?}", s.run(q, &[], Kind::Select).expect("select")))
    .collect()
}

/// A database a run has changed every way a run can (rows added and deleted, counters moved on,
/// a transaction left open by a connection that went away) is, after a reset, what a fresh one
/// is: the same rows and the same next numbers.
fn reset_is_a_fresh_database(spec: &DbSpec) {
    use racelab_real::backend::db::Kind;
    let prog = program("reset-counters.race", COUNTERS, "v");
    let setup = &prog.database.as_ref().expect("database").setup_text;
    assert!(
        racelab_real::backend::db::reset::truncate_plan(setup).is_some(),
        "this setup is meant to take the TRUNCATE path"
    );
    let fresh = numbered_rows(&spec.open(&prog).expect("fresh database"));
    let used = spec.open(&prog).expect("database");
    {
        let mut s = used.connect(0).expect("connects");
        for sql in [
            "INSERT INTO item (name) VALUES ('x')",
            "INSERT INTO item (name) VALUES ('y')",
            "DELETE FROM item WHERE name = 'first'",
            "DELETE FROM tag",
            "BEGIN",
            "INSERT INTO tag (item_id) VALUES (9)",
        ] {
            let kind = if sql == "BEGIN" {
                Kind::Control
            } else {
                Kind::Change
            };
            s.run(sql, &[], kind).expect(sql);
        }
    }
    used.reset().expect("reset");
    assert_eq!(numbered_rows(&used), fresh, "{}", spec.name());
    used.reset().expect("reset");
    assert_eq!(
        numbered_rows(&used),
        fresh,
        "{} (a second reset)",
        spec.name()
    );
}

#[test]
fn postgres_reset_is_a_fresh_database() {
    reset_is_a_fresh_database(&postgres());
}

#[test]
fn mariadb_reset_is_a_fresh_database() {
    reset_is_a_fresh_database(&mariadb());
}

/// An actor's PostgreSQL connection handed to a later run has nothing of the earlier run left:
/// no open transaction (its insert is rolled back), no session setting, no temp table.
#[test]
fn postgres_a_pooled_connection_is_a_new_session_again() {
    use racelab_real::backend::db::Kind;
    let spec = postgres();
    let prog = program("reset-counters.race", COUNTERS, "v");
    let backend = spec.open(&prog).expect("database");
    let mut s = backend.connect(0).expect("connects");
    let id = s.id();
    for (sql, kind) in [
        ("CREATE TEMP TABLE scratch (x INTEGER)", Kind::Change),
        (
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            Kind::Control,
        ),
        ("BEGIN", Kind::Control),
        (
            "INSERT INTO item (name) VALUES ('uncommitted')",
            Kind::Change,
        ),
    ] {
        s.run(sql, &[], kind).expect(sql);
    }
    backend.recycle_session(s);
    let mut again = backend.connect(1).expect("connects");
    assert_eq!(again.id(), id, "the pooled session is handed out");
    let one = |s: &mut Box<dyn racelab_real::backend::db::Session>, sql: &str| {
        format!("{:?}", s.run(sql, &[], Kind::Select).expect(sql))
    };
    let fresh = |sql: &str| one(&mut backend.connect(2).expect("connects"), sql);
    for sql in [
        "SELECT current_setting('transaction_isolation')",
        "SELECT COUNT(*) FROM pg_tables WHERE tablename = 'scratch'",
        "SELECT name FROM item ORDER BY id",
    ] {
        assert_eq!(one(&mut again, sql), fresh(sql), "{sql}");
    }
}

/// Forced replays that share one database (reset between them) reproduce the race every time,
/// with the real server's duplicate-key error, as replays on fresh databases do.
fn replays_on_one_database_reproduce_every_time(spec: &DbSpec) {
    let prog = person("check-then-insert");
    let sched = model_token(&prog, "no_mail_lost");
    let mut replayer = racelab_real::backend::db::forced::DbReplayer::new(spec);
    for i in 0..3 {
        let r = replayer
            .replay(&prog, &sched)
            .unwrap_or_else(|e| panic!("{} replay {i}: {e}", spec.name()));
        assert_eq!(
            r.divergence,
            None,
            "{} replay {i}: {:#?}",
            spec.name(),
            results(&r)
        );
        assert!(r.reproduced(&sched), "{} replay {i}", spec.name());
    }
}

#[test]
fn postgres_replays_on_one_database_reproduce_every_time() {
    replays_on_one_database_reproduce_every_time(&postgres());
}

#[test]
fn mariadb_replays_on_one_database_reproduce_every_time() {
    replays_on_one_database_reproduce_every_time(&mariadb());
}
