//! Statements on the model database: placeholders, prepare's errors, execution errors, NULLs in
//! unique keys, and each flavour's UPDATE assignment order.

use std::sync::Arc;

use racelab_core::model::db::{prepare, Flavour, Outcome};
use racelab_lang::ir::{Errno, Value};

use super::{blocked, db, done, failed, int, ok, query, rows, run, s, stmt, A, B, PERSON};

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
