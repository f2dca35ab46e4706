//! Property tests of the model database: random interleavings never panic, a Blocked statement
//! changes nothing, and any statement that prepares also runs without panicking.

use std::sync::Arc;

use proptest::prelude::*;
use racelab_core::model::db::{prepare, Flavour, Outcome, Prepared};
use racelab_lang::ir::Value;

use super::{db, int, s, stmt, A, B, PERSON};

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
