//! SQLite on the model: one writer, "database is locked", and BEGIN IMMEDIATE.

use racelab_core::model::db::{Db, Flavour, Level, Outcome};
use racelab_lang::ir::Errno;

use super::{count, db, done, ok, run, A, B, PERSON};

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
