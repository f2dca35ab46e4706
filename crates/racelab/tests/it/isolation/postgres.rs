//! PostgreSQL's isolation levels on the model: write skew under REPEATABLE READ and SSI,
//! snapshots, concurrent updates, and serialization failures.

use std::sync::Arc;

use racelab_core::model::db::{prepare, Flavour, Level, Outcome};
use racelab_lang::ir::{Errno, Value};

use super::{
    count, db, done, ok, run, serialization, write_skew, A, B, CONCURRENT_UPDATE, DOCTORS, ON_CALL,
    PERSON, SSI,
};

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
