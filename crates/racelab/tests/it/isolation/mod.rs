//! The model database's isolation levels, statement by statement: PostgreSQL's REPEATABLE READ
//! snapshots and 40001 on concurrent updates, SERIALIZABLE's SSI (write skew, the COMMIT that
//! dooms a pivot, a serialization failure winning over a duplicate key), InnoDB's REPEATABLE READ
//! snapshot beside latest-version writes and duplicate checks, InnoDB READ COMMITTED without gap
//! locks, SQLite's one writer with WAL snapshots and SQLITE_BUSY, the statements that set
//! levels, and the compile errors for what a flavour cannot run.

use std::sync::Arc;

use racelab_core::model::db::{prepare, Db, Flavour, Outcome};
use racelab_lang::ir::{Errno, Value};

mod innodb_and_levels;
mod postgres;
mod sqlite;

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
