//! InnoDB's REPEATABLE READ and READ COMMITTED on the model, SET TRANSACTION per server, and
//! levels a flavour cannot run refused at compile time.

use std::sync::Arc;

use racelab_core::model::db::{Flavour, Level, Outcome};
use racelab_lang::ir::{Errno, Value};

use super::{count, db, done, ok, run, A, B, DOCTORS, ON_CALL, PERSON};

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
