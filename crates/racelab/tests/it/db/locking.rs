//! Row locks, gap locks and their deadlocks, unique-key waits, FOR UPDATE/SHARE (with SKIP
//! LOCKED and NOWAIT) and PostgreSQL's key-share strengths on the model database.

use std::sync::Arc;

use racelab_core::model::db::{prepare, Flavour, Held, Outcome};
use racelab_lang::ir::{Errno, Value};

use super::{
    blocked, db, done, failed, int, ok, query, rows, run, s, A, B, C, MYSQL_DEADLOCK, PATCH, PERSON,
};

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
