//! The model database's isolation levels, statement by statement: PostgreSQL's REPEATABLE READ
//! snapshots and 40001 on concurrent updates, SERIALIZABLE's SSI (write skew, the COMMIT that
//! dooms a pivot, a serialization failure winning over a duplicate key), InnoDB's REPEATABLE READ
//! snapshot beside latest-version writes and duplicate checks, InnoDB READ COMMITTED without gap
//! locks, SQLite's one writer with WAL snapshots and SQLITE_BUSY, the statements that set
//! levels, and the compile errors for what a flavour cannot run.

use std::sync::Arc;

use racelab_lang::ir::{Errno, Value};
use racelab_core::model::db::{prepare, Db, Flavour, Level, Outcome};

const A: usize = 1;
const B: usize = 2;

const DOCTORS: &[&str] = &[
    "CREATE TABLE doctor (id INTEGER PRIMARY KEY, name TEXT, on_call BOOLEAN NOT NULL)",
    "INSERT INTO doctor (id, name, on_call) VALUES (1, 'alice', TRUE), (2, 'bob', TRUE)",
];

const PERSON: &[&str] = &[
    "CREATE TABLE person (id INTEGER PRIMARY KEY, email VARCHAR(100) NOT NULL UNIQUE)",
    "INSERT INTO person (id, email) VALUES (1, 'one@x')",
];

fn db(flavour: Flavour, setup: &[&str]) -> Db {
    let setup: Vec<_> = setup
        .iter()
        .map(|s| prepare(s).expect("setup prepares"))
        .collect();
    Db::new(flavour, &setup).expect("setup runs")
}

fn run(db: &mut Db, conn: usize, sql: &str) -> Outcome {
    db.execute(
        conn,
        &prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}")),
        &[],
    )
}

fn ok() -> Outcome {
    Outcome::Done(Value::None)
}

fn done(n: i64) -> Outcome {
    Outcome::Done(Value::Int(n))
}

fn count(n: i64) -> Outcome {
    Outcome::Done(Value::Rows(Arc::new(vec![vec![Value::Int(n)]])))
}

fn serialization(message: &str) -> Outcome {
    Outcome::Failed {
        error: Errno::OperationalError,
        message: message.to_string(),
    }
}

const CONCURRENT_UPDATE: &str = "could not serialize access due to concurrent update";
const SSI: &str = "could not serialize access due to read/write dependencies among transactions";
const ON_CALL: &str = "SELECT COUNT(*) FROM doctor WHERE on_call = TRUE";

/// Write skew: both doctors see two on call and each goes off call.
fn write_skew(db: &mut Db, begin: &str) -> (Outcome, Outcome) {
    assert_eq!(run(db, A, begin), ok());
    assert_eq!(run(db, B, begin), ok());
    assert_eq!(run(db, A, ON_CALL), count(2));
    assert_eq!(run(db, B, ON_CALL), count(2));
    assert_eq!(
        run(db, A, "UPDATE doctor SET on_call = FALSE WHERE id = 1"),
        done(1)
    );
    assert_eq!(
        run(db, B, "UPDATE doctor SET on_call = FALSE WHERE id = 2"),
        done(1)
    );
    (run(db, A, "COMMIT"), run(db, B, "COMMIT"))
}

#[test]
fn postgres_repeatable_read_allows_write_skew() {
    let mut db = db(Flavour::Postgres, DOCTORS);
    assert_eq!(
        write_skew(&mut db, "BEGIN ISOLATION LEVEL REPEATABLE READ"),
        (ok(), ok())
    );
    assert_eq!(
        db.query(&prepare(ON_CALL).expect("prepares"), &[]),
        Ok(Value::Rows(Arc::new(vec![vec![Value::Int(0)]])))
    );
}

#[test]
fn postgres_serializable_catches_write_skew_at_the_second_commit() {
    let mut db = db(Flavour::Postgres, DOCTORS);
    assert_eq!(
        write_skew(&mut db, "BEGIN ISOLATION LEVEL SERIALIZABLE"),
        (ok(), serialization(SSI))
    );
    assert_eq!(
        db.query(&prepare(ON_CALL).expect("prepares"), &[]),
        Ok(Value::Rows(Arc::new(vec![vec![Value::Int(1)]])))
    );
    // The failed COMMIT ended the transaction: the connection is back in autocommit.
    assert!(!db.in_transaction(B));
}

#[test]
fn postgres_serializable_without_a_cycle_commits_both() {
    let mut db = db(Flavour::Postgres, DOCTORS);
    for c in [A, B] {
        assert_eq!(run(&mut db, c, "BEGIN ISOLATION LEVEL SERIALIZABLE"), ok());
    }
    assert_eq!(
        run(
            &mut db,
            A,
            "SELECT on_call FROM doctor WHERE name = 'alice'"
        ),
        Outcome::Done(Value::Rows(Arc::new(vec![vec![Value::Bool(true)]])))
    );
    assert_eq!(
        run(&mut db, B, "SELECT on_call FROM doctor WHERE name = 'bob'"),
        Outcome::Done(Value::Rows(Arc::new(vec![vec![Value::Bool(true)]])))
    );
    assert_eq!(
        run(
            &mut db,
            A,
            "UPDATE doctor SET on_call = FALSE WHERE name = 'alice'"
        ),
        done(1)
    );
    assert_eq!(
        run(
            &mut db,
            B,
            "UPDATE doctor SET on_call = FALSE WHERE name = 'bob'"
        ),
        done(1)
    );
    // The model's reads are exact predicates: no rw-antidependency, both commit. (PostgreSQL
    // reads this table by sequential scan and locks the whole relation: see realdb_isolation.)
    assert_eq!(run(&mut db, A, "COMMIT"), ok());
    assert_eq!(run(&mut db, B, "COMMIT"), ok());
}

#[test]
fn postgres_repeatable_read_reads_its_snapshot_and_fails_on_a_concurrent_update() {
    let mut db = db(Flavour::Postgres, DOCTORS);
    assert_eq!(
        run(&mut db, A, "BEGIN ISOLATION LEVEL REPEATABLE READ"),
        ok()
    );
    assert_eq!(db.isolation_level(A), Level::RepeatableRead);
    assert_eq!(run(&mut db, A, ON_CALL), count(2));
    assert_eq!(
        run(&mut db, B, "UPDATE doctor SET on_call = FALSE WHERE id = 2"),
        done(1)
    );
    assert_eq!(
        run(&mut db, A, ON_CALL),
        count(2),
        "the snapshot, not B's commit"
    );
    // Row 1 was not changed since the snapshot: updating it is fine.
    assert_eq!(
        run(&mut db, A, "UPDATE doctor SET name = 'al' WHERE id = 1"),
        done(1)
    );
    assert_eq!(
        run(&mut db, A, "UPDATE doctor SET name = 'b' WHERE id = 2"),
        serialization(CONCURRENT_UPDATE)
    );
    assert!(db.is_aborted(A));
    assert_eq!(run(&mut db, A, "ROLLBACK"), ok());
}

#[test]
fn postgres_repeatable_read_waits_then_fails_or_proceeds_as_the_holder_ends() {
    for (end, expected) in [
        ("COMMIT", serialization(CONCURRENT_UPDATE)),
        ("ROLLBACK", done(1)),
    ] {
        let mut db = db(Flavour::Postgres, DOCTORS);
        assert_eq!(run(&mut db, B, "BEGIN"), ok());
        assert_eq!(
            run(&mut db, B, "UPDATE doctor SET on_call = FALSE WHERE id = 1"),
            done(1)
        );
        assert_eq!(
            run(&mut db, A, "BEGIN ISOLATION LEVEL REPEATABLE READ"),
            ok()
        );
        // The first statement takes the snapshot, then waits for B's row lock.
        assert!(matches!(
            run(&mut db, A, "UPDATE doctor SET name = 'x' WHERE id = 1"),
            Outcome::Blocked { .. }
        ));
        assert_eq!(run(&mut db, B, end), ok());
        assert_eq!(
            run(&mut db, A, "UPDATE doctor SET name = 'x' WHERE id = 1"),
            expected,
            "after B's {end}"
        );
    }
}

#[test]
fn postgres_serializable_failure_wins_over_a_duplicate_key() {
    let mut db = db(Flavour::Postgres, PERSON);
    let find = "SELECT id FROM person WHERE email = 'new@x'";
    for c in [A, B] {
        assert_eq!(run(&mut db, c, "BEGIN ISOLATION LEVEL SERIALIZABLE"), ok());
        assert_eq!(
            run(&mut db, c, find),
            Outcome::Done(Value::Rows(Arc::new(vec![])))
        );
    }
    assert_eq!(
        run(
            &mut db,
            A,
            "INSERT INTO person (id, email) VALUES (2, 'new@x')"
        ),
        done(1)
    );
    assert!(matches!(
        run(
            &mut db,
            B,
            "INSERT INTO person (id, email) VALUES (3, 'new@x')"
        ),
        Outcome::Blocked { .. }
    ));
    assert_eq!(run(&mut db, A, "COMMIT"), ok());
    assert_eq!(
        run(
            &mut db,
            B,
            "INSERT INTO person (id, email) VALUES (3, 'new@x')"
        ),
        serialization(SSI)
    );
    // At REPEATABLE READ the same race is a plain duplicate key.
    let mut db = self::db(Flavour::Postgres, PERSON);
    for c in [A, B] {
        assert_eq!(
            run(&mut db, c, "BEGIN ISOLATION LEVEL REPEATABLE READ"),
            ok()
        );
        assert_eq!(
            run(&mut db, c, find),
            Outcome::Done(Value::Rows(Arc::new(vec![])))
        );
    }
    assert_eq!(
        run(
            &mut db,
            A,
            "INSERT INTO person (id, email) VALUES (2, 'new@x')"
        ),
        done(1)
    );
    assert_eq!(run(&mut db, A, "COMMIT"), ok());
    assert!(matches!(
        run(
            &mut db,
            B,
            "INSERT INTO person (id, email) VALUES (3, 'new@x')"
        ),
        Outcome::Failed {
            error: Errno::IntegrityError,
            ..
        }
    ));
}

#[test]
fn innodb_repeatable_read_snapshot_from_the_first_read_writes_on_the_latest() {
    let mut db = db(Flavour::InnoDb, PERSON);
    let find = "SELECT id FROM person WHERE email = 'new@x'";
    assert_eq!(
        db.isolation_level(A),
        Level::RepeatableRead,
        "MariaDB's default"
    );
    assert_eq!(run(&mut db, A, "BEGIN"), ok());
    // No read yet: no snapshot, so B's commit before A's first SELECT is visible to A.
    assert_eq!(
        run(
            &mut db,
            B,
            "INSERT INTO person (id, email) VALUES (5, 'early@x')"
        ),
        done(1)
    );
    assert_eq!(run(&mut db, A, "SELECT COUNT(*) FROM person"), count(2));
    assert_eq!(
        run(
            &mut db,
            B,
            "INSERT INTO person (id, email) VALUES (2, 'new@x')"
        ),
        done(1)
    );
    assert_eq!(
        run(&mut db, A, find),
        Outcome::Done(Value::Rows(Arc::new(vec![]))),
        "the snapshot"
    );
    // The duplicate check sees the latest committed row: 1062 for a row A cannot SELECT.
    let dup = run(
        &mut db,
        A,
        "INSERT INTO person (id, email) VALUES (3, 'new@x')",
    );
    assert!(
        matches!(&dup, Outcome::Failed { error: Errno::IntegrityError, message } if message.starts_with("(1062")),
        "{dup:?}"
    );
    assert_eq!(
        run(&mut db, A, find),
        Outcome::Done(Value::Rows(Arc::new(vec![]))),
        "still the snapshot"
    );
    // UPDATE acts on the latest committed version and then A sees its own write.
    assert_eq!(
        run(
            &mut db,
            A,
            "UPDATE person SET email = 'mine@x' WHERE id = 2"
        ),
        done(1)
    );
    assert_eq!(
        run(
            &mut db,
            A,
            "SELECT COUNT(*) FROM person WHERE email = 'mine@x'"
        ),
        count(1)
    );
    // A locking read sees the latest version too.
    assert_eq!(
        run(
            &mut db,
            A,
            "SELECT COUNT(*) FROM person WHERE id = 5 FOR UPDATE"
        ),
        count(1)
    );
    assert_eq!(run(&mut db, A, "COMMIT"), ok());
}

#[test]
fn innodb_read_committed_takes_no_gap_locks() {
    const PATCH: &[&str] = &[
        "CREATE TABLE patch (id INTEGER PRIMARY KEY, x INTEGER NOT NULL DEFAULT 0)",
        "INSERT INTO patch (id, x) VALUES (1, 0)",
    ];
    for (level, second_insert_blocks) in [("REPEATABLE READ", true), ("READ COMMITTED", false)] {
        let mut db = db(Flavour::InnoDb, PATCH);
        for (c, id) in [(A, 10), (B, 11)] {
            assert_eq!(
                run(
                    &mut db,
                    c,
                    &format!("SET SESSION TRANSACTION ISOLATION LEVEL {level}")
                ),
                ok()
            );
            assert_eq!(run(&mut db, c, "BEGIN"), ok());
            assert_eq!(
                run(
                    &mut db,
                    c,
                    &format!("UPDATE patch SET x = 1 WHERE id = {id}")
                ),
                done(0)
            );
        }
        let insert = run(&mut db, A, "INSERT INTO patch (id, x) VALUES (10, 1)");
        assert_eq!(
            matches!(insert, Outcome::Blocked { .. }),
            second_insert_blocks,
            "{level}: {insert:?}"
        );
    }
}

#[test]
fn set_transaction_follows_each_servers_rules() {
    // PostgreSQL: SET TRANSACTION sets the open transaction, before its first query only.
    let mut db = db(Flavour::Postgres, DOCTORS);
    assert_eq!(
        run(&mut db, A, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
        ok(),
        "outside a transaction: a warning, no effect"
    );
    assert_eq!(db.isolation_level(A), Level::ReadCommitted);
    assert_eq!(run(&mut db, A, "BEGIN"), ok());
    assert_eq!(
        run(
            &mut db,
            A,
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
        ),
        ok()
    );
    assert_eq!(db.isolation_level(A), Level::RepeatableRead);
    assert_eq!(run(&mut db, A, ON_CALL), count(2));
    assert!(matches!(
        run(&mut db, A, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
        Outcome::Failed {
            error: Errno::ProgrammingError,
            ..
        }
    ));
    assert_eq!(run(&mut db, A, "ROLLBACK"), ok());
    assert_eq!(
        run(
            &mut db,
            A,
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE"
        ),
        ok()
    );
    assert_eq!(run(&mut db, A, "BEGIN"), ok());
    assert_eq!(db.isolation_level(A), Level::Serializable);
    // MySQL: SET TRANSACTION sets the next transaction only, and not inside one.
    let mut db = self::db(Flavour::InnoDb, PERSON);
    assert_eq!(
        run(&mut db, A, "SET TRANSACTION ISOLATION LEVEL READ COMMITTED"),
        ok()
    );
    assert_eq!(run(&mut db, A, "BEGIN"), ok());
    assert_eq!(db.isolation_level(A), Level::ReadCommitted);
    assert!(
        matches!(run(&mut db, A, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"), Outcome::Failed { error: Errno::ProgrammingError, message } if message.starts_with("(1568"))
    );
    assert_eq!(run(&mut db, A, "COMMIT"), ok());
    assert_eq!(run(&mut db, A, "BEGIN"), ok());
    assert_eq!(
        db.isolation_level(A),
        Level::RepeatableRead,
        "back to the default"
    );
}

#[test]
fn a_level_or_statement_the_flavour_cannot_run_is_a_compile_error_with_its_span() {
    let cases = [
        (
            "innodb",
            "BEGIN ISOLATION LEVEL READ COMMITTED",
            "SET TRANSACTION ISOLATION LEVEL x",
        ),
        (
            "innodb",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "READ COMMITTED, REPEATABLE READ",
        ),
        (
            "innodb",
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
            "SET SESSION TRANSACTION",
        ),
        (
            "postgres",
            "SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "SET SESSION CHARACTERISTICS",
        ),
        (
            "postgres",
            "BEGIN ISOLATION LEVEL READ UNCOMMITTED",
            "READ COMMITTED, REPEATABLE READ, SERIALIZABLE",
        ),
        (
            "sqlite",
            "BEGIN ISOLATION LEVEL SERIALIZABLE",
            "SQLite has no isolation levels to choose",
        ),
        (
            "sqlite",
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
            "BEGIN IMMEDIATE",
        ),
        (
            "sqlite",
            "SELECT id FROM t FOR UPDATE",
            "SQLite has no SELECT ... FOR UPDATE",
        ),
        (
            "postgres",
            "BEGIN IMMEDIATE",
            "BEGIN IMMEDIATE and BEGIN EXCLUSIVE are SQLite's",
        ),
        (
            "innodb",
            "BEGIN EXCLUSIVE",
            "BEGIN IMMEDIATE and BEGIN EXCLUSIVE are SQLite's",
        ),
    ];
    for (flavour, sql, hint) in cases {
        let src = format!("scenario s {{\n  database {flavour} {{ \"CREATE TABLE t (id INTEGER PRIMARY KEY)\" }}\n  actor a {{ sql(\"{sql}\") }}\n}}\n");
        let err = racelab_core::lang::compile("s.race", &src)
            .err()
            .unwrap_or_else(|| panic!("{flavour}: `{sql}` compiled"));
        let err = racelab_core::lang::diag::render_plain(&err);
        assert!(
            err.contains("s.race:3:17"),
            "{flavour} `{sql}`: no span in {err}"
        );
        // The message wraps; compare its words.
        let err = err
            .replace('│', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(err.contains(hint), "{flavour} `{sql}`: {err}");
    }
    // What each server accepts compiles, and the program names the levels it runs at.
    let src = "scenario s {\n  database { \"CREATE TABLE t (id INTEGER PRIMARY KEY)\" }\n  actor a { sql(\"BEGIN ISOLATION LEVEL SERIALIZABLE\") }\n}\n";
    let sc = racelab_core::lang::compile("s.race", src).expect("compiles");
    assert_eq!(
        sc.variants[0].isolation_levels().as_deref(),
        Some("read committed (default), serializable")
    );
}

const LOCKED: &str = "database is locked";

fn locked() -> Outcome {
    Outcome::Failed {
        error: Errno::OperationalError,
        message: LOCKED.to_string(),
    }
}

fn blocked_on(db: &mut Db, conn: usize, sql: &str, holder: usize) {
    match run(db, conn, sql) {
        Outcome::Blocked { on, .. } => assert_eq!(on, vec![holder], "{sql}"),
        other => panic!("`{sql}` did not wait for the writer: {other:?}"),
    }
}

#[test]
fn sqlite_has_one_writer_and_a_transaction_that_has_read_cannot_wait_for_it() {
    let mut db = db(Flavour::Sqlite, PERSON);
    assert_eq!(db.isolation_level(A), Level::Serializable);
    // A writes first: it holds the write lock until COMMIT.
    assert_eq!(run(&mut db, A, "BEGIN"), ok());
    assert_eq!(
        run(&mut db, A, "INSERT INTO person (email) VALUES ('two@x')"),
        done(1)
    );
    // B has read nothing yet: its write waits (the busy handler), even an autocommit one.
    assert_eq!(run(&mut db, B, "BEGIN"), ok());
    blocked_on(
        &mut db,
        B,
        "UPDATE person SET email = 'uno@x' WHERE id = 1",
        A,
    );
    blocked_on(&mut db, 3, "DELETE FROM person WHERE id = 1", A);
    // Once B has read, waiting could deadlock: SQLITE_BUSY at once, and B's transaction stays.
    assert_eq!(run(&mut db, B, "SELECT COUNT(*) FROM person"), count(1));
    assert_eq!(
        run(&mut db, B, "UPDATE person SET email = 'uno@x' WHERE id = 1"),
        locked()
    );
    assert!(db.in_transaction(B));
    assert_eq!(run(&mut db, A, "COMMIT"), ok());
    // A's commit overtook B's snapshot: B still reads it, and can never write (BUSY_SNAPSHOT).
    assert_eq!(run(&mut db, B, "SELECT COUNT(*) FROM person"), count(1));
    assert_eq!(
        run(&mut db, B, "UPDATE person SET email = 'uno@x' WHERE id = 1"),
        locked()
    );
    assert_eq!(run(&mut db, B, "ROLLBACK"), ok());
    // A fresh transaction sees the commit and writes.
    assert_eq!(run(&mut db, B, "SELECT COUNT(*) FROM person"), count(2));
    assert_eq!(
        run(&mut db, B, "UPDATE person SET email = 'uno@x' WHERE id = 1"),
        done(1)
    );
}

#[test]
fn sqlite_begin_immediate_takes_the_write_lock_and_errors_are_sqlites() {
    let mut db = db(Flavour::Sqlite, PERSON);
    assert_eq!(run(&mut db, A, "BEGIN IMMEDIATE"), ok());
    assert!(db.holders().iter().any(|h| h.conn == A));
    blocked_on(&mut db, B, "BEGIN IMMEDIATE", A);
    // A statement that fails rolls back only itself; the write lock stays with A.
    assert_eq!(
        run(
            &mut db,
            A,
            "INSERT INTO person (id, email) VALUES (2, 'one@x')"
        ),
        Outcome::Failed {
            error: Errno::IntegrityError,
            message: "UNIQUE constraint failed: person.email".to_string(),
        }
    );
    assert_eq!(
        run(&mut db, A, "BEGIN"),
        Outcome::Failed {
            error: Errno::OperationalError,
            message: "cannot start a transaction within a transaction".to_string(),
        }
    );
    assert_eq!(
        run(&mut db, A, "INSERT INTO person (email) VALUES ('two@x')"),
        done(1)
    );
    assert_eq!(run(&mut db, A, "ROLLBACK"), ok());
    // The rolled-back rowid is taken again: max(rowid) + 1.
    assert_eq!(run(&mut db, B, "BEGIN IMMEDIATE"), ok());
    assert_eq!(
        run(&mut db, B, "INSERT INTO person (email) VALUES ('three@x')"),
        done(1)
    );
    assert_eq!(
        run(&mut db, B, "SELECT id FROM person WHERE email = 'three@x'"),
        count(2)
    );
    assert_eq!(run(&mut db, B, "COMMIT"), ok());
    assert_eq!(
        run(&mut db, B, "COMMIT"),
        Outcome::Failed {
            error: Errno::OperationalError,
            message: "cannot commit - no transaction is active".to_string(),
        }
    );
    assert_eq!(
        run(&mut db, B, "SELECT nope FROM person"),
        Outcome::Failed {
            error: Errno::OperationalError,
            message: "no such column: nope".to_string(),
        }
    );
}
