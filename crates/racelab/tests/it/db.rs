//! The model database: locking, visibility, unique keys, InnoDB gap locks and deadlocks, the
//! PostgreSQL aborted-transaction rule, prepare's errors, and a property test that a Blocked
//! outcome never changes anything.

use std::sync::Arc;

use proptest::prelude::*;
use racelab_lang::ir::{Errno, Value};
use racelab_core::model::db::{prepare, Db, Flavour, Held, Outcome, Prepared};

const A: usize = 1;
const B: usize = 2;
const C: usize = 3;

fn stmt(sql: &str) -> Arc<Prepared> {
    prepare(sql).unwrap_or_else(|e| panic!("prepare `{sql}`: {e}"))
}

fn db(flavour: Flavour, setup: &[&str]) -> Db {
    let setup: Vec<_> = setup.iter().map(|s| stmt(s)).collect();
    Db::new(flavour, &setup).unwrap_or_else(|e| panic!("setup: {e}"))
}

fn run(db: &mut Db, conn: usize, sql: &str, params: &[Value]) -> Outcome {
    db.execute(conn, &stmt(sql), params)
}

fn int(n: i64) -> Value {
    Value::Int(n)
}

fn s(text: &str) -> Value {
    Value::str(text)
}

fn done(n: i64) -> Outcome {
    Outcome::Done(int(n))
}

fn ok() -> Outcome {
    Outcome::Done(Value::None)
}

fn rows(rows: Vec<Vec<Value>>) -> Outcome {
    Outcome::Done(Value::Rows(Arc::new(rows)))
}

fn blocked(on: &[usize], lock: &str) -> Outcome {
    Outcome::Blocked {
        on: on.to_vec(),
        lock: lock.to_string(),
    }
}

fn failed(error: Errno, message: &str) -> Outcome {
    Outcome::Failed {
        error,
        message: message.to_string(),
    }
}

fn query(db: &Db, sql: &str) -> Value {
    db.query(&stmt(sql), &[])
        .unwrap_or_else(|e| panic!("query `{sql}`: {e}"))
}

const PATCH: &[&str] = &[
    "CREATE TABLE patch (submission_ptr_id INTEGER PRIMARY KEY, x INTEGER NOT NULL DEFAULT 0)",
    "INSERT INTO patch (submission_ptr_id, x) VALUES (1, 0), (2, 0), (3, 0)",
];

const PERSON: &[&str] = &[
    "CREATE TABLE person (id INTEGER PRIMARY KEY AUTO_INCREMENT, email VARCHAR(100) UNIQUE, n INTEGER NOT NULL DEFAULT 0)",
    "INSERT INTO person (id, email, n) VALUES (1, 'one@x', 0), (2, 'two@x', 0)",
];

const MYSQL_DEADLOCK: &str =
    "(1213, 'Deadlock found when trying to get lock; try restarting transaction')";

/// Patchwork (seed 003): two "update, and insert if nothing was updated" transactions on keys
/// past the end of the table both gap-lock the gap before the supremum, then each insert waits
/// for the other's gap lock: InnoDB kills the second as a deadlock victim.
#[test]
fn patchwork_gap_lock_deadlock_innodb() {
    let mut db = db(Flavour::InnoDb, PATCH);
    assert_eq!(run(&mut db, A, "BEGIN", &[]), ok());
    assert_eq!(
        run(
            &mut db,
            A,
            "UPDATE patch SET x = 1 WHERE submission_ptr_id = 10",
            &[]
        ),
        done(0)
    );
    assert_eq!(run(&mut db, B, "START TRANSACTION", &[]), ok());
    assert_eq!(
        run(
            &mut db,
            B,
            "UPDATE patch SET x = 1 WHERE submission_ptr_id = 11",
            &[]
        ),
        done(0)
    );
    let gap = "gap before supremum in patch (next-key lock)";
    assert_eq!(
        db.holders(),
        vec![
            Held {
                conn: A,
                lock: gap.to_string()
            },
            Held {
                conn: B,
                lock: gap.to_string()
            }
        ]
    );

    let insert = "INSERT INTO patch (submission_ptr_id, x) VALUES (?, 1)";
    assert_eq!(run(&mut db, A, insert, &[int(10)]), blocked(&[B], gap));
    assert_eq!(db.waiting(A), Some((&[B][..], gap)));
    assert_eq!(
        run(&mut db, B, insert, &[int(11)]),
        failed(Errno::OperationalError, MYSQL_DEADLOCK)
    );
    assert!(
        !db.in_transaction(B),
        "the victim's transaction is rolled back"
    );
    assert_eq!(
        db.holders(),
        vec![Held {
            conn: A,
            lock: gap.to_string()
        }]
    );

    assert_eq!(run(&mut db, A, insert, &[int(10)]), done(1));
    assert_eq!(run(&mut db, A, "COMMIT", &[]), ok());
    assert_eq!(db.count("patch"), Some(4));
    assert_eq!(
        query(&db, "SELECT submission_ptr_id FROM patch WHERE x = 1"),
        Value::Rows(Arc::new(vec![vec![int(10)]]))
    );
    assert!(db.holders().is_empty());
}

#[test]
fn patchwork_sequence_never_blocks_under_postgres() {
    let mut db = db(Flavour::Postgres, PATCH);
    let insert = "INSERT INTO patch (submission_ptr_id, x) VALUES (?, 1)";
    assert_eq!(run(&mut db, A, "BEGIN", &[]), ok());
    assert_eq!(
        run(
            &mut db,
            A,
            "UPDATE patch SET x = 1 WHERE submission_ptr_id = 10",
            &[]
        ),
        done(0)
    );
    assert_eq!(run(&mut db, B, "BEGIN", &[]), ok());
    assert_eq!(
        run(
            &mut db,
            B,
            "UPDATE patch SET x = 1 WHERE submission_ptr_id = 11",
            &[]
        ),
        done(0)
    );
    assert!(db.holders().is_empty(), "PostgreSQL has no gap locks");
    assert_eq!(run(&mut db, A, insert, &[int(10)]), done(1));
    assert_eq!(run(&mut db, B, insert, &[int(11)]), done(1));
    assert_eq!(run(&mut db, A, "COMMIT", &[]), ok());
    assert_eq!(run(&mut db, B, "COMMIT", &[]), ok());
    assert_eq!(db.count("patch"), Some(5));
}

/// A gap lock only stops inserts into its own gap.
#[test]
fn innodb_gap_lock_covers_only_its_gap() {
    let mut db = db(
        Flavour::InnoDb,
        &[
            "CREATE TABLE t (id INTEGER PRIMARY KEY)",
            "INSERT INTO t (id) VALUES (10), (20), (30)",
        ],
    );
    assert_eq!(run(&mut db, A, "BEGIN", &[]), ok());
    assert_eq!(
        run(&mut db, A, "SELECT id FROM t WHERE id = 15 FOR UPDATE", &[]),
        rows(vec![])
    );
    assert_eq!(
        run(&mut db, B, "INSERT INTO t (id) VALUES (25)", &[]),
        done(1)
    );
    assert_eq!(
        run(&mut db, B, "INSERT INTO t (id) VALUES (12)", &[]),
        blocked(&[A], "gap before t(id=20) (gap lock)")
    );
    assert_eq!(run(&mut db, A, "ROLLBACK", &[]), ok());
    assert_eq!(
        run(&mut db, B, "INSERT INTO t (id) VALUES (12)", &[]),
        done(1)
    );
}

/// Check-then-insert in autocommit: both checks pass, the second insert hits the unique key.
#[test]
fn check_then_insert_race_gets_integrity_error() {
    for (flavour, message) in [
        (
            Flavour::Postgres,
            "duplicate key value violates unique constraint \"person_email_key\"",
        ),
        (
            Flavour::InnoDb,
            "(1062, \"Duplicate entry 'new@x' for key 'person.email'\")",
        ),
    ] {
        let mut db = db(flavour, PERSON);
        let check = "SELECT COUNT(*) FROM person WHERE email = %s";
        let insert = "INSERT INTO person (email) VALUES (%s)";
        assert_eq!(
            run(&mut db, A, check, &[s("new@x")]),
            rows(vec![vec![int(0)]])
        );
        assert_eq!(
            run(&mut db, B, check, &[s("new@x")]),
            rows(vec![vec![int(0)]])
        );
        assert_eq!(run(&mut db, A, insert, &[s("new@x")]), done(1));
        assert_eq!(
            run(&mut db, B, insert, &[s("new@x")]),
            failed(Errno::IntegrityError, message)
        );
        assert_eq!(db.count("person"), Some(3));
        assert_eq!(
            query(&db, "SELECT id FROM person WHERE email = 'new@x'"),
            Value::Rows(Arc::new(vec![vec![int(3)]]))
        );
    }
}

/// An INSERT whose key another transaction has inserted but not committed waits; then fails if
/// that transaction commits, or succeeds if it rolls back.
#[test]
fn insert_waits_for_uncommitted_duplicate() {
    for flavour in [Flavour::Postgres, Flavour::InnoDb] {
        for commit in [true, false] {
            let mut db = db(flavour, PERSON);
            let insert = "INSERT INTO person (id, email) VALUES (?, ?)";
            assert_eq!(run(&mut db, A, "BEGIN", &[]), ok());
            assert_eq!(run(&mut db, A, insert, &[int(7), s("dup@x")]), done(1));
            let Outcome::Blocked { on, lock } = run(&mut db, B, insert, &[int(8), s("dup@x")])
            else {
                panic!("{flavour:?}: expected Blocked")
            };
            assert_eq!(on, vec![A]);
            assert!(lock.starts_with("row person(id=7)"), "{lock}");
            assert_eq!(
                run(&mut db, A, if commit { "COMMIT" } else { "ROLLBACK" }, &[]),
                ok()
            );
            let retry = run(&mut db, B, insert, &[int(8), s("dup@x")]);
            if commit {
                assert!(
                    matches!(
                        retry,
                        Outcome::Failed {
                            error: Errno::IntegrityError,
                            ..
                        }
                    ),
                    "{flavour:?}: {retry:?}"
                );
            } else {
                assert_eq!(retry, done(1), "{flavour:?}");
            }
            assert_eq!(db.count("person"), Some(3));
        }
    }
}

/// UPDATE waits for a row lock and, retried after COMMIT, re-reads the row: no lost update.
#[test]
fn row_lock_blocks_update_until_commit() {
    for flavour in [Flavour::Postgres, Flavour::InnoDb] {
        let mut db = db(flavour, PERSON);
        let bump = "UPDATE person SET n = n + 1 WHERE id = ?";
        assert_eq!(run(&mut db, A, "BEGIN", &[]), ok());
        assert_eq!(run(&mut db, A, bump, &[int(1)]), done(1));
        assert_eq!(
            run(&mut db, B, bump, &[int(1)]),
            blocked(&[A], "row person(id=1)")
        );
        assert_eq!(
            run(&mut db, B, bump, &[int(1)]),
            blocked(&[A], "row person(id=1)")
        );
        assert_eq!(
            run(&mut db, B, bump, &[int(2)]),
            done(1),
            "other rows are free"
        );
        assert_eq!(
            db.holders(),
            vec![Held {
                conn: A,
                lock: "row person(id=1)".to_string()
            }]
        );
        assert_eq!(run(&mut db, A, "COMMIT", &[]), ok());
        assert_eq!(run(&mut db, B, bump, &[int(1)]), done(1));
        assert_eq!(
            query(&db, "SELECT n FROM person ORDER BY id"),
            Value::Rows(Arc::new(vec![vec![int(2)], vec![int(1)]]))
        );
    }
}

#[test]
fn select_for_update_blocks_and_skip_locked_and_nowait_do_not() {
    let mut db = db(Flavour::Postgres, PERSON);
    assert_eq!(run(&mut db, A, "BEGIN", &[]), ok());
    assert_eq!(
        run(
            &mut db,
            A,
            "SELECT id FROM person WHERE id = 1 FOR UPDATE",
            &[]
        ),
        rows(vec![vec![int(1)]])
    );
    assert_eq!(
        run(&mut db, B, "SELECT id FROM person FOR UPDATE", &[]),
        blocked(&[A], "row person(id=1)")
    );
    assert_eq!(
        run(&mut db, B, "SELECT id FROM person", &[]),
        rows(vec![vec![int(1)], vec![int(2)]]),
        "plain reads never block"
    );
    assert_eq!(
        run(
            &mut db,
            B,
            "SELECT id FROM person ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
            &[]
        ),
        rows(vec![vec![int(2)]])
    );
    assert_eq!(
        run(
            &mut db,
            B,
            "SELECT id FROM person WHERE id = 1 FOR UPDATE NOWAIT",
            &[]
        ),
        failed(
            Errno::OperationalError,
            "could not obtain lock on row in relation \"person\""
        )
    );
}

/// FOR SHARE: sharers do not block each other; an exclusive locker or writer waits for all
/// of them (NOWAIT fails, SKIP LOCKED skips); a sharer waits for an exclusive holder; two
/// sharers upgrading to FOR UPDATE deadlock (PostgreSQL's nowait-2 and skip-locked-2 specs).
#[test]
fn select_for_share_shares_and_blocks_writers() {
    let mut db = db(Flavour::Postgres, PERSON);
    let share = "SELECT id FROM person WHERE id = 1 FOR SHARE";
    for conn in [A, B, C] {
        assert_eq!(run(&mut db, conn, "BEGIN", &[]), ok());
    }
    assert_eq!(run(&mut db, A, share, &[]), rows(vec![vec![int(1)]]));
    assert_eq!(
        run(&mut db, B, share, &[]),
        rows(vec![vec![int(1)]]),
        "sharers share"
    );
    assert_eq!(
        run(&mut db, C, "UPDATE person SET n = 1 WHERE id = 1", &[]),
        blocked(&[A, B], "row person(id=1)")
    );
    assert_eq!(
        run(
            &mut db,
            C,
            "SELECT id FROM person ORDER BY id FOR UPDATE SKIP LOCKED",
            &[]
        ),
        rows(vec![vec![int(2)]])
    );
    assert_eq!(
        run(
            &mut db,
            C,
            "SELECT id FROM person WHERE id = 1 FOR UPDATE NOWAIT",
            &[]
        ),
        failed(
            Errno::OperationalError,
            "could not obtain lock on row in relation \"person\""
        )
    );
    assert_eq!(run(&mut db, C, "ROLLBACK", &[]), ok());
    assert_eq!(
        run(
            &mut db,
            A,
            "SELECT id FROM person WHERE id = 1 FOR UPDATE",
            &[]
        ),
        blocked(&[B], "row person(id=1)"),
        "an upgrade waits for the other sharer only"
    );
    assert_eq!(
        run(&mut db, B, "UPDATE person SET n = 2 WHERE id = 1", &[]),
        failed(Errno::OperationalError, "deadlock detected")
    );
    assert_eq!(
        run(
            &mut db,
            A,
            "SELECT id FROM person WHERE id = 1 FOR UPDATE",
            &[]
        ),
        rows(vec![vec![int(1)]]),
        "the victim's shared lock went with its transaction"
    );
    assert_eq!(run(&mut db, C, "BEGIN", &[]), ok());
    assert_eq!(
        run(&mut db, C, share, &[]),
        blocked(&[A], "row person(id=1)"),
        "a sharer waits for an exclusive holder"
    );
    assert_eq!(run(&mut db, A, "COMMIT", &[]), ok());
    assert_eq!(run(&mut db, C, share, &[]), rows(vec![vec![int(1)]]));
    assert_eq!(
        db.holders(),
        vec![Held {
            conn: C,
            lock: "row person(id=1) (shared)".into()
        }]
    );
}

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

#[test]
fn placeholders_are_bound_in_text_order() {
    let mut db = db(
        Flavour::Postgres,
        &[
            "CREATE TABLE t (id INT PRIMARY KEY, a TEXT, b INT, flag BOOLEAN)",
            "INSERT INTO t VALUES (1, 'x', 0, FALSE)",
        ],
    );
    let update = stmt("UPDATE t SET a = ?, b = ? + 1 WHERE id = ? AND flag = ?");
    assert_eq!(update.params(), 4);
    assert_eq!(
        db.execute(A, &update, &[s("new"), int(41), int(1), Value::Bool(false)]),
        done(1)
    );
    assert_eq!(
        query(&db, "SELECT a, b FROM t"),
        Value::Rows(Arc::new(vec![vec![s("new"), int(42)]]))
    );

    let pyformat = stmt("SELECT id FROM t WHERE a = %s AND b = %s AND '%s' <> a");
    assert_eq!(pyformat.params(), 2, "%s inside quotes is text");
    assert_eq!(
        db.execute(A, &pyformat, &[s("new"), int(42)]),
        rows(vec![vec![int(1)]])
    );

    let numbered = stmt("SELECT id FROM t WHERE a = $2 AND b = $1");
    assert_eq!(numbered.params(), 2);
    assert_eq!(
        db.execute(A, &numbered, &[int(42), s("new")]),
        rows(vec![vec![int(1)]])
    );

    let insert = stmt("INSERT INTO t (id, a, b) VALUES (?, ?, 7), (?, 'lit', ?)");
    assert_eq!(insert.params(), 4);
    assert_eq!(
        db.execute(A, &insert, &[int(2), s("two"), int(3), int(8)]),
        done(2)
    );
    assert_eq!(
        query(&db, "SELECT id, a, b FROM t WHERE id > 1 ORDER BY id DESC"),
        Value::Rows(Arc::new(vec![
            vec![int(3), s("lit"), int(8)],
            vec![int(2), s("two"), int(7)]
        ]))
    );

    assert!(matches!(
        db.execute(A, &update, &[int(1)]),
        Outcome::Failed {
            error: Errno::ProgrammingError,
            ..
        }
    ));
    assert!(
        prepare("SELECT id FROM t WHERE a = ? AND b = $1").is_err(),
        "mixed styles"
    );
}

#[test]
fn prepare_rejects_unsupported_sql_clearly() {
    for sql in [
        "DROP TABLE person",
        "CREATE INDEX i ON person (email)",
        "SELECT p.id FROM person p JOIN patch q ON p.id = q.id",
        "SELECT email, COUNT(*) FROM person GROUP BY email",
        "INSERT INTO person (email) VALUES ('a') ON CONFLICT DO NOTHING",
        "INSERT INTO person (email) SELECT email FROM person",
        "SELECT id FROM person FOR UPDATE OF person",
        "SELECT id FROM person LIMIT 1 OFFSET 2",
        "SELECT DISTINCT email FROM person",
        "SELECT id FROM person WHERE email LIKE 'a%'",
        "SELECT 1",
        "SET TRANSACTION READ ONLY",
        "BEGIN ISOLATION LEVEL READ UNCOMMITTED",
        "START TRANSACTION READ ONLY",
        "SET GLOBAL TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "UPDATE person SET n = 1 WHERE id = 1 RETURNING id",
        "CREATE TABLE d (at TIMESTAMP)",
        "SELECT id FROM person WHERE n = 1.5",
    ] {
        let err = prepare(sql)
            .err()
            .unwrap_or_else(|| panic!("`{sql}` should be refused"));
        assert!(
            err.contains("unsupported") && err.contains("supported:"),
            "`{sql}`: {err}"
        );
    }
    for n in [100, 1000, 20000] {
        let long = format!(
            "SELECT * FROM person WHERE {}",
            vec!["id = 1"; n].join(" OR ")
        );
        assert!(
            prepare(&long).is_err(),
            "a {n}-term chain is refused, not a stack overflow"
        );
    }
    let nested = format!(
        "SELECT * FROM person WHERE {}id = 1{}",
        "(".repeat(500),
        ")".repeat(500)
    );
    assert!(prepare(&nested).is_err());
    for garbage in [
        "",
        "   ;",
        "¡¿ SELEC FROM ??",
        "SELECT * FROM",
        "'unterminated",
        "SELECT 1; SELECT 2",
        "\u{0}\u{1}",
    ] {
        assert!(prepare(garbage).is_err(), "`{garbage}` should not prepare");
    }
}

#[test]
fn execution_errors_are_programming_errors() {
    let mut db = db(Flavour::InnoDb, PERSON);
    assert_eq!(
        run(&mut db, A, "SELECT id FROM nobody", &[]),
        failed(
            Errno::ProgrammingError,
            "(1146, \"Table 'nobody' doesn't exist\")"
        )
    );
    assert_eq!(
        run(&mut db, A, "UPDATE person SET nope = 1", &[]),
        failed(
            Errno::ProgrammingError,
            "(1054, \"Unknown column 'nope' in 'field list'\")"
        )
    );
    assert!(matches!(
        run(&mut db, A, "CREATE TABLE x (id INT)", &[]),
        Outcome::Failed {
            error: Errno::ProgrammingError,
            ..
        }
    ));
    assert_eq!(
        run(
            &mut db,
            A,
            "INSERT INTO person (email, n) VALUES ('z', NULL)",
            &[]
        ),
        failed(
            Errno::IntegrityError,
            "(1048, \"Column 'n' cannot be null\")"
        )
    );
    assert!(matches!(
        run(&mut db, A, "UPDATE person SET n = n / 0", &[]),
        Outcome::Failed {
            error: Errno::ProgrammingError,
            ..
        }
    ));
    assert_eq!(db.count("person"), Some(2));
}

/// InnoDB's locking reads see the newest version, so they wait for another transaction's
/// uncommitted insert of the key; PostgreSQL's snapshot does not see it at all.
#[test]
fn locking_reads_and_uncommitted_inserts() {
    for (flavour, expected) in [
        (Flavour::Postgres, done(0)),
        (Flavour::InnoDb, blocked(&[A], "row person(id=7)")),
    ] {
        let mut db = db(flavour, PERSON);
        assert_eq!(run(&mut db, A, "BEGIN", &[]), ok());
        assert_eq!(
            run(
                &mut db,
                A,
                "INSERT INTO person (id, email) VALUES (7, 'seven@x')",
                &[]
            ),
            done(1)
        );
        assert_eq!(
            run(&mut db, B, "UPDATE person SET n = 1 WHERE id = 7", &[]),
            expected,
            "{flavour:?}"
        );
    }
}

#[test]
fn nulls_never_conflict_in_unique_keys() {
    for flavour in [Flavour::Postgres, Flavour::InnoDb] {
        let mut db = db(flavour, PERSON);
        assert_eq!(run(&mut db, A, "BEGIN", &[]), ok());
        assert_eq!(
            run(
                &mut db,
                A,
                "INSERT INTO person (email) VALUES (NULL), (NULL)",
                &[]
            ),
            done(2)
        );
        assert_eq!(
            run(&mut db, B, "INSERT INTO person (email) VALUES (NULL)", &[]),
            done(1),
            "{flavour:?}"
        );
        assert_eq!(
            run(
                &mut db,
                B,
                "SELECT COUNT(*) FROM person WHERE email IS NULL",
                &[]
            ),
            rows(vec![vec![int(1)]])
        );
    }
}

/// MySQL evaluates SET assignments left to right; PostgreSQL evaluates all of them on the old row.
#[test]
fn update_assignment_order_follows_the_flavour() {
    for (flavour, b) in [(Flavour::Postgres, 0), (Flavour::InnoDb, 1)] {
        let mut db = db(
            flavour,
            &[
                "CREATE TABLE t (id INT PRIMARY KEY, a INT, b INT)",
                "INSERT INTO t VALUES (1, 0, 0)",
            ],
        );
        assert_eq!(
            run(
                &mut db,
                A,
                "UPDATE t SET a = a + 1, b = a WHERE id = 1",
                &[]
            ),
            done(1)
        );
        assert_eq!(
            query(&db, "SELECT a, b FROM t"),
            Value::Rows(Arc::new(vec![vec![int(1), int(b)]])),
            "{flavour:?}"
        );
    }
}

/// The statements the property test draws from (BEGIN thrice, so that transactions overlap and
/// hold locks); every placeholder takes the same integer parameter.
const POOL: &[&str] = &[
    "BEGIN",
    "BEGIN",
    "START TRANSACTION",
    "COMMIT",
    "ROLLBACK",
    "SELECT id, email, n FROM person WHERE id = ? ORDER BY id",
    "SELECT COUNT(*) FROM person WHERE n >= ?",
    "SELECT id FROM person WHERE id >= ? ORDER BY id LIMIT 2 FOR UPDATE",
    "SELECT id FROM person WHERE id = ? FOR UPDATE SKIP LOCKED",
    "INSERT INTO person (id, email) VALUES (?, 'same@x')",
    "INSERT INTO person (email) VALUES (?)",
    "INSERT INTO person (id, email) VALUES (?, NULL), (9, NULL)",
    "UPDATE person SET n = n + 1 WHERE id = ?",
    "UPDATE person SET n = n + 1 WHERE id = ?",
    "UPDATE person SET id = ? WHERE id = 1",
    "UPDATE person SET email = 'one@x' WHERE n = ?",
    "DELETE FROM person WHERE id = ?",
    "DELETE FROM person WHERE n > ?",
    "SELECT nope FROM person WHERE id = ?",
];

fn pool_params(sql: &Prepared, p: i64) -> Vec<Value> {
    (0..sql.params()).map(|_| int(p)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random interleavings never panic, a Blocked statement changes nothing, and committed data
    /// always agrees between count() and query().
    #[test]
    fn random_statements_never_panic_and_blocked_changes_nothing(
        innodb in any::<bool>(),
        steps in proptest::collection::vec((0usize..3, 0usize..POOL.len() + 1, 0i64..6), 1..60),
    ) {
        let pool: Vec<_> = POOL.iter().map(|s| stmt(s)).collect();
        let count = stmt("SELECT COUNT(*) FROM person");
        let mut db = db(if innodb { Flavour::InnoDb } else { Flavour::Postgres }, PERSON);
        for (conn, which, p) in steps {
            let Some(sql) = pool.get(which) else {
                db.disconnect(conn);
                continue;
            };
            let before = db.clone();
            let outcome = db.execute(conn, sql, &pool_params(sql, p));
            if let Outcome::Blocked { on, .. } = &outcome {
                prop_assert!(db.same_state(&before), "Blocked changed the state: {}", sql.sql());
                prop_assert!(!on.is_empty() && !on.contains(&conn));
                prop_assert!(on.iter().all(|c| db.holders().iter().any(|h| h.conn == *c)));
                prop_assert_eq!(db.waiting(conn).map(|(on, _)| on.to_vec()), Some(on.clone()));
            }
            let counted = db.count("person").map(|n| Value::Rows(Arc::new(vec![vec![int(n as i64)]])));
            prop_assert_eq!(counted, db.query(&count, &[]).ok());
        }
        for conn in 0..3 {
            db.disconnect(conn);
        }
        prop_assert!(db.holders().is_empty());
    }

    #[test]
    fn prepare_never_panics_on_noise(text in "\\PC{0,80}") {
        let _ = prepare(&text);
    }

    /// Generated statements of the subset with random WHERE expressions (nonsense included, such
    /// as `'x' / NULL` or overflowing sums): whatever prepares also runs without panicking.
    #[test]
    fn generated_statements_never_panic(
        prefix in proptest::sample::select(PREFIXES),
        first in proptest::sample::select(OPERANDS),
        rest in proptest::collection::vec((proptest::sample::select(OPERATORS), proptest::sample::select(OPERANDS)), 0..6),
        suffix in proptest::sample::select(SUFFIXES),
        innodb in any::<bool>(),
    ) {
        let mut sql = format!("{prefix} WHERE {first}");
        for (op, operand) in rest {
            sql.push_str(&format!(" {op} {operand}"));
        }
        sql.push_str(suffix);
        if let Ok(p) = prepare(&sql) {
            let params: Vec<Value> = (0..p.params()).map(|i| if i % 2 == 0 { int(i as i64) } else { s("x") }).collect();
            let mut db = db(if innodb { Flavour::InnoDb } else { Flavour::Postgres }, PERSON);
            let _ = db.query(&p, &params);
            for conn in [A, B, A] {
                let _ = db.execute(conn, &p, &params);
            }
        }
    }
}

const PREFIXES: &[&str] = &[
    "SELECT * FROM person",
    "SELECT id, n + 1, email FROM person",
    "SELECT COUNT(*) FROM person",
    "UPDATE person SET n = n + ?",
    "UPDATE person SET id = id + 1, email = ?",
    "DELETE FROM person",
];

const OPERANDS: &[&str] = &[
    "id",
    "n",
    "email",
    "?",
    "%s",
    "1",
    "-1",
    "0",
    "NULL",
    "'x'",
    "TRUE",
    "(n + 1)",
    "9223372036854775807",
    "(id IN (1, ?, NULL))",
    "(n BETWEEN 0 AND ?)",
    "(email IS NULL)",
    "(NOT id = 2)",
];

const OPERATORS: &[&str] = &[
    "=", "<>", "<", ">=", "AND", "OR", "+", "-", "*", "/", "%", "IS", "IN",
];

const SUFFIXES: &[&str] = &[
    "",
    " ORDER BY id DESC",
    " ORDER BY email, n LIMIT 1",
    " LIMIT ?",
    " FOR UPDATE",
    " ORDER BY n LIMIT 2 FOR UPDATE SKIP LOCKED",
    " FOR UPDATE NOWAIT",
];

/// PostgreSQL's row-lock strengths on the model: FOR KEY SHARE lets a non-key UPDATE through
/// but makes a key-changing UPDATE and a DELETE wait; FOR NO KEY UPDATE lets FOR KEY SHARE
/// through and blocks FOR SHARE; FOR KEY SHARE is PostgreSQL's only.
#[test]
fn key_share_and_no_key_update_conflict_as_in_postgres() {
    let setup = [
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)",
        "INSERT INTO t VALUES (1, 10)",
    ];
    let mut db = db(Flavour::Postgres, &setup);
    for c in [1, 2] {
        assert_eq!(run(&mut db, c, "BEGIN", &[]), ok());
    }
    assert_eq!(
        run(&mut db, 1, "SELECT id FROM t FOR KEY SHARE", &[]),
        rows(vec![vec![int(1)]])
    );
    assert_eq!(
        run(&mut db, 2, "UPDATE t SET v = 11 WHERE id = 1", &[]),
        done(1)
    );
    assert_eq!(
        run(&mut db, 1, "SELECT id FROM t FOR SHARE", &[]),
        blocked(&[2], "row t(id=1)")
    );
    assert_eq!(run(&mut db, 2, "COMMIT", &[]), ok());
    assert_eq!(run(&mut db, 2, "BEGIN", &[]), ok());
    assert_eq!(
        run(&mut db, 2, "UPDATE t SET id = 2 WHERE id = 1", &[]),
        blocked(&[1], "row t(id=1)")
    );
    assert_eq!(
        run(&mut db, 2, "DELETE FROM t WHERE id = 1", &[]),
        blocked(&[1], "row t(id=1)")
    );
    // Connection 1's FOR SHARE waited and was not retried: it holds FOR KEY SHARE only.
    assert_eq!(
        run(&mut db, 2, "SELECT id FROM t FOR NO KEY UPDATE", &[]),
        rows(vec![vec![int(1)]])
    );
    let err = prepare("SELECT id FROM t FOR KEY SHARE")
        .unwrap()
        .check_flavour(Flavour::InnoDb)
        .unwrap_err();
    assert!(err.contains("PostgreSQL's"), "{err}");
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
