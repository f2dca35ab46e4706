//! Transactions on the model database: visibility, rollback (also to a savepoint), disconnect,
//! PostgreSQL's aborted-transaction rule, deadlock detection and auto-increment counters.

use std::sync::Arc;

use racelab_core::model::db::{Flavour, Outcome};
use racelab_lang::ir::{Errno, Value};

use super::{blocked, db, done, failed, int, ok, query, rows, run, s, A, B, C, PERSON};

#[test]
fn read_committed_visibility() {
    for flavour in [Flavour::Postgres, Flavour::InnoDb] {
        let mut db = db(flavour, PERSON);
        let count = "SELECT COUNT(*) FROM person";
        assert_eq!(run(&mut db, A, "BEGIN", &[]), ok());
        assert_eq!(
            run(
                &mut db,
                A,
                "INSERT INTO person (email) VALUES ('three@x')",
                &[]
            ),
            done(1)
        );
        assert_eq!(
            run(
                &mut db,
                A,
                "UPDATE person SET email = 'uno@x' WHERE id = 1",
                &[]
            ),
            done(1)
        );
        assert_eq!(
            run(&mut db, A, count, &[]),
            rows(vec![vec![int(3)]]),
            "own insert visible"
        );
        assert_eq!(
            run(&mut db, A, "SELECT email FROM person WHERE id = 1", &[]),
            rows(vec![vec![s("uno@x")]])
        );
        assert_eq!(
            run(&mut db, B, count, &[]),
            rows(vec![vec![int(2)]]),
            "others' insert invisible"
        );
        assert_eq!(
            run(&mut db, B, "SELECT email FROM person WHERE id = 1", &[]),
            rows(vec![vec![s("one@x")]])
        );
        assert_eq!(db.count("person"), Some(2));
        assert_eq!(query(&db, count), Value::Rows(Arc::new(vec![vec![int(2)]])));
        assert_eq!(run(&mut db, A, "COMMIT", &[]), ok());
        assert_eq!(run(&mut db, B, count, &[]), rows(vec![vec![int(3)]]));
        assert_eq!(
            run(&mut db, B, "SELECT email FROM person WHERE id = 1", &[]),
            rows(vec![vec![s("uno@x")]])
        );
    }
}

#[test]
fn rollback_undoes_everything() {
    for flavour in [Flavour::Postgres, Flavour::InnoDb] {
        let mut db = db(flavour, PERSON);
        let all = "SELECT * FROM person ORDER BY id";
        let before = query(&db, all);
        assert_eq!(run(&mut db, A, "BEGIN", &[]), ok());
        assert_eq!(
            run(
                &mut db,
                A,
                "INSERT INTO person (id, email) VALUES (5, 'five@x')",
                &[]
            ),
            done(1)
        );
        assert_eq!(
            run(&mut db, A, "UPDATE person SET n = 9 WHERE id <> 5", &[]),
            done(2)
        );
        assert_eq!(
            run(&mut db, A, "DELETE FROM person WHERE id = 2", &[]),
            done(1)
        );
        assert_eq!(
            run(&mut db, A, "SELECT id, n FROM person ORDER BY id", &[]),
            rows(vec![vec![int(1), int(9)], vec![int(5), int(0)]])
        );
        assert_eq!(run(&mut db, A, "ROLLBACK", &[]), ok());
        assert_eq!(query(&db, all), before, "{flavour:?}");
        assert_eq!(run(&mut db, B, all, &[]), Outcome::Done(before));
        assert!(db.holders().is_empty());
        assert!(!db.in_transaction(A));
    }
}

#[test]
fn disconnect_rolls_back_and_releases_locks() {
    let mut db = db(Flavour::InnoDb, PERSON);
    assert_eq!(run(&mut db, A, "BEGIN", &[]), ok());
    assert_eq!(
        run(&mut db, A, "UPDATE person SET n = 5 WHERE id = 1", &[]),
        done(1)
    );
    assert_eq!(
        run(&mut db, B, "DELETE FROM person WHERE id = 1", &[]),
        blocked(&[A], "row person(id=1)")
    );
    db.disconnect(A);
    assert!(!db.in_transaction(A));
    assert!(db.holders().is_empty());
    assert_eq!(
        query(&db, "SELECT n FROM person WHERE id = 1"),
        Value::Rows(Arc::new(vec![vec![int(0)]]))
    );
    assert_eq!(
        run(&mut db, B, "DELETE FROM person WHERE id = 1", &[]),
        done(1)
    );
    assert_eq!(db.count("person"), Some(1));
}

/// PostgreSQL: an error aborts the transaction (changes undone, locks released at once) and
/// everything but ROLLBACK/COMMIT fails until it ends. InnoDB fails just the statement.
#[test]
fn postgres_error_aborts_the_transaction() {
    let mut db = db(Flavour::Postgres, PERSON);
    assert_eq!(run(&mut db, A, "BEGIN", &[]), ok());
    assert_eq!(
        run(
            &mut db,
            A,
            "INSERT INTO person (id, email) VALUES (5, 'five@x')",
            &[]
        ),
        done(1)
    );
    assert_eq!(
        run(&mut db, A, "UPDATE person SET n = 1 WHERE id = 2", &[]),
        done(1)
    );
    assert_eq!(
        run(
            &mut db,
            A,
            "INSERT INTO person (id, email) VALUES (1, 'again@x')",
            &[]
        ),
        failed(
            Errno::IntegrityError,
            "duplicate key value violates unique constraint \"person_pkey\""
        )
    );
    assert!(db.is_aborted(A));
    assert!(
        db.holders().is_empty(),
        "the aborted transaction released its locks"
    );
    assert_eq!(
        run(&mut db, B, "UPDATE person SET n = 2 WHERE id = 2", &[]),
        done(1)
    );
    let aborted = failed(
        Errno::ProgrammingError,
        "current transaction is aborted, commands ignored until end of transaction block",
    );
    assert_eq!(run(&mut db, A, "SELECT id FROM person", &[]), aborted);
    assert_eq!(run(&mut db, A, "BEGIN", &[]), aborted);
    assert_eq!(
        run(&mut db, A, "COMMIT", &[]),
        ok(),
        "COMMIT of an aborted transaction rolls back"
    );
    assert_eq!(db.count("person"), Some(2));
    assert_eq!(
        run(&mut db, A, "SELECT n FROM person WHERE id = 2", &[]),
        rows(vec![vec![int(2)]])
    );

    let mut db = self::db(Flavour::InnoDb, PERSON);
    assert_eq!(run(&mut db, A, "BEGIN", &[]), ok());
    assert_eq!(
        run(
            &mut db,
            A,
            "INSERT INTO person (id, email) VALUES (5, 'five@x')",
            &[]
        ),
        done(1)
    );
    assert_eq!(
        run(
            &mut db,
            A,
            "INSERT INTO person (id, email) VALUES (6, 'six@x'), (1, 'again@x')",
            &[]
        ),
        failed(
            Errno::IntegrityError,
            "(1062, \"Duplicate entry '1' for key 'person.PRIMARY'\")"
        )
    );
    assert!(!db.is_aborted(A));
    assert_eq!(
        run(&mut db, A, "SELECT id FROM person ORDER BY id", &[]),
        rows(vec![vec![int(1)], vec![int(2)], vec![int(5)]]),
        "the failed statement left nothing"
    );
    assert_eq!(run(&mut db, A, "COMMIT", &[]), ok());
    assert_eq!(db.count("person"), Some(3));
}

#[test]
fn postgres_row_lock_deadlock_is_detected() {
    let mut db = db(Flavour::Postgres, PERSON);
    let bump = "UPDATE person SET n = n + 1 WHERE id = $1";
    for conn in [A, B] {
        assert_eq!(run(&mut db, conn, "BEGIN", &[]), ok());
    }
    assert_eq!(run(&mut db, A, bump, &[int(1)]), done(1));
    assert_eq!(run(&mut db, B, bump, &[int(2)]), done(1));
    assert_eq!(
        run(&mut db, A, bump, &[int(2)]),
        blocked(&[B], "row person(id=2)")
    );
    assert_eq!(
        run(&mut db, B, bump, &[int(1)]),
        failed(Errno::OperationalError, "deadlock detected")
    );
    assert!(db.is_aborted(B));
    assert_eq!(run(&mut db, A, bump, &[int(2)]), done(1));
    assert_eq!(run(&mut db, A, "COMMIT", &[]), ok());
    assert_eq!(run(&mut db, B, "ROLLBACK", &[]), ok());
    assert_eq!(
        query(&db, "SELECT n FROM person ORDER BY id"),
        Value::Rows(Arc::new(vec![vec![int(1)], vec![int(1)]]))
    );
}

/// A wait whose holder has since let go is not an edge: no false deadlock.
#[test]
fn stale_waits_do_not_make_deadlocks() {
    let mut db = db(Flavour::InnoDb, PERSON);
    let bump = "UPDATE person SET n = n + 1 WHERE id = ?";
    assert_eq!(run(&mut db, A, "BEGIN", &[]), ok());
    assert_eq!(run(&mut db, A, bump, &[int(1)]), done(1));
    assert_eq!(run(&mut db, B, "BEGIN", &[]), ok());
    assert_eq!(run(&mut db, B, bump, &[int(2)]), done(1));
    assert_eq!(
        run(&mut db, B, bump, &[int(1)]),
        blocked(&[A], "row person(id=1)")
    );
    assert_eq!(run(&mut db, A, "COMMIT", &[]), ok());
    // B has not retried yet; A, in a new transaction, waits for B: no cycle any more.
    assert_eq!(run(&mut db, A, "BEGIN", &[]), ok());
    assert_eq!(
        run(&mut db, A, bump, &[int(2)]),
        blocked(&[B], "row person(id=2)")
    );
    assert_eq!(
        run(&mut db, C, bump, &[int(2)]),
        blocked(&[B], "row person(id=2)")
    );
}

#[test]
fn auto_increment_counters_differ_between_flavours() {
    let setup = &[
        "CREATE TABLE t (id SERIAL PRIMARY KEY, v TEXT)",
        "INSERT INTO t (id, v) VALUES (1, 'setup')",
    ];
    let mut pg = db(Flavour::Postgres, setup);
    assert_eq!(
        run(
            &mut pg,
            A,
            "INSERT INTO t (id, v) VALUES (2, 'explicit')",
            &[]
        ),
        done(1)
    );
    assert_eq!(
        run(&mut pg, A, "INSERT INTO t (v) VALUES ('serial')", &[]),
        failed(
            Errno::IntegrityError,
            "duplicate key value violates unique constraint \"t_pkey\""
        ),
        "a PostgreSQL sequence does not move past explicit ids"
    );
    assert_eq!(
        run(&mut pg, A, "INSERT INTO t (v) VALUES ('serial')", &[]),
        done(1),
        "the failed insert used up 2"
    );
    assert_eq!(
        query(&pg, "SELECT id FROM t WHERE v = 'serial'"),
        Value::Rows(Arc::new(vec![vec![int(3)]]))
    );

    let mut my = db(Flavour::InnoDb, setup);
    assert_eq!(
        run(
            &mut my,
            A,
            "INSERT INTO t (id, v) VALUES (2, 'explicit')",
            &[]
        ),
        done(1)
    );
    assert_eq!(
        run(&mut my, A, "INSERT INTO t (v) VALUES ('auto')", &[]),
        done(1)
    );
    assert_eq!(
        query(&my, "SELECT id FROM t WHERE v = 'auto'"),
        Value::Rows(Arc::new(vec![vec![int(3)]]))
    );
    // Not transactional: a rolled-back insert's number is gone.
    assert_eq!(run(&mut my, B, "BEGIN", &[]), ok());
    assert_eq!(
        run(&mut my, B, "INSERT INTO t (v) VALUES ('lost')", &[]),
        done(1)
    );
    assert_eq!(run(&mut my, B, "ROLLBACK", &[]), ok());
    assert_eq!(
        run(&mut my, A, "INSERT INTO t (v) VALUES ('next')", &[]),
        done(1)
    );
    assert_eq!(
        query(&my, "SELECT id FROM t WHERE v = 'next'"),
        Value::Rows(Arc::new(vec![vec![int(5)]]))
    );
}

/// Savepoints on the model: ROLLBACK TO undoes the writes and releases the locks taken after
/// the savepoint and keeps those before; an error inside a savepoint aborts only back to it,
/// and ROLLBACK TO ends the aborted state; RELEASE forgets it; an unknown name is an error.
#[test]
fn rollback_to_savepoint_releases_later_locks_and_keeps_earlier_ones() {
    let setup = [
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)",
        "INSERT INTO t VALUES (1, 10), (2, 20)",
    ];
    let mut db = db(Flavour::Postgres, &setup);
    assert_eq!(run(&mut db, 1, "BEGIN", &[]), ok());
    assert_eq!(
        run(&mut db, 1, "UPDATE t SET v = 11 WHERE id = 1", &[]),
        done(1)
    );
    assert_eq!(run(&mut db, 1, "SAVEPOINT a", &[]), ok());
    assert_eq!(
        run(&mut db, 1, "UPDATE t SET v = 21 WHERE id = 2", &[]),
        done(1)
    );
    assert_eq!(
        run(&mut db, 1, "INSERT INTO t VALUES (3, 30)", &[]),
        done(1)
    );
    assert_eq!(
        run(&mut db, 2, "UPDATE t SET v = 22 WHERE id = 2", &[]),
        blocked(&[1], "row t(id=2)")
    );
    assert_eq!(run(&mut db, 1, "ROLLBACK TO SAVEPOINT a", &[]), ok());
    assert_eq!(
        run(&mut db, 2, "UPDATE t SET v = 22 WHERE id = 2", &[]),
        done(1)
    );
    assert_eq!(
        run(&mut db, 2, "UPDATE t SET v = 12 WHERE id = 1", &[]),
        blocked(&[1], "row t(id=1)")
    );
    // An error inside the savepoint: aborted until ROLLBACK TO, earlier work kept.
    assert_eq!(run(&mut db, 1, "SAVEPOINT b", &[]), ok());
    assert!(matches!(
        run(&mut db, 1, "INSERT INTO t VALUES (1, 0)", &[]),
        Outcome::Failed { .. }
    ));
    assert!(
        matches!(run(&mut db, 1, "SELECT id FROM t", &[]), Outcome::Failed { message, .. } if message.starts_with("current transaction is aborted"))
    );
    assert_eq!(run(&mut db, 1, "ROLLBACK TO b", &[]), ok());
    assert_eq!(run(&mut db, 1, "RELEASE SAVEPOINT b", &[]), ok());
    assert!(
        matches!(run(&mut db, 1, "RELEASE b", &[]), Outcome::Failed { message, .. } if message == "savepoint \"b\" does not exist")
    );
    assert_eq!(run(&mut db, 1, "ROLLBACK", &[]), ok());
    assert_eq!(run(&mut db, 1, "BEGIN", &[]), ok());
    assert_eq!(run(&mut db, 1, "SAVEPOINT c", &[]), ok());
    assert_eq!(run(&mut db, 1, "COMMIT", &[]), ok());
    assert_eq!(
        query(&db, "SELECT id, v FROM t ORDER BY id"),
        // Connection 2's autocommit UPDATE of row 2 committed once row 2 was free again.
        Value::Rows(Arc::new(vec![vec![int(1), int(10)], vec![int(2), int(22)]]))
    );
}
