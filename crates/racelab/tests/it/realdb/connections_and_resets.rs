//! Connections the server counts (Launchpad's read-only switch), resets between stress runs,
//! pooled sessions, and forced replays sharing one database.

use std::sync::Arc;

use racelab_real::backend::db::forced::forced_replay;
use racelab_real::backend::db::DbSpec;

use super::{
    force, launchpad, mariadb, model_schedule, model_token, person, postgres, program, results,
    round_robin,
};

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
