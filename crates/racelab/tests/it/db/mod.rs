//! The model database: locking, visibility, unique keys, InnoDB gap locks and deadlocks, the
//! PostgreSQL aborted-transaction rule, prepare's errors, and a property test that a Blocked
//! outcome never changes anything.

use std::sync::Arc;

use racelab_core::model::db::{prepare, Db, Flavour, Outcome, Prepared};
use racelab_lang::ir::{Errno, Value};

mod locking;
mod properties;
mod statements;
mod transactions;

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
