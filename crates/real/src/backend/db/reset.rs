//! Putting a worker's database back to the scenario's initial state between stress runs.
//!
//! Dropping and creating the tables again costs a server 3–20 ms of catalog work per run; when
//! the setup only creates tables (and indexes) and inserts rows, emptying the tables with
//! TRUNCATE, which also restarts their AUTO_INCREMENT / SERIAL counters, and inserting the
//! rows again gives the same state for a fraction of that. TRUNCATE gives each table new, empty
//! storage (it does not delete rows one by one), so no delete-marked record or dead tuple of
//! the previous run is left to take part in the next run's locking. Any other setup statement
//! (a sequence, a view, a trigger, an ALTER, ...) holds state TRUNCATE would not put back: such
//! a setup is dropped and created again, as before.

use super::{translate_ddl, Dialect};

/// How the tables of a setup made only of CREATE TABLE, CREATE [UNIQUE] INDEX and INSERT are
/// put back: empty these tables, then run these INSERTs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncatePlan {
    /// The created tables, each as the setup spells its name (quotes kept).
    pub tables: Vec<String>,
    /// The setup's INSERT statements, in order.
    pub rows: Vec<String>,
}

/// The first `n` words of `sql`, upper-cased.
fn leading_words(sql: &str, n: usize) -> Vec<String> {
    sql.split_whitespace()
        .take(n)
        .map(|w| w.to_ascii_uppercase())
        .collect()
}

/// The table name a `CREATE TABLE [IF NOT EXISTS] name (...)` creates, spelt as written; `None`
/// for anything else, and for `CREATE TABLE ... AS SELECT` / `LIKE` (their contents or shape
/// come from elsewhere).
fn created_table_as_written(sql: &str) -> Option<String> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let upper = leading_words(sql, 5);
    if upper.len() < 3 || upper[0] != "CREATE" || upper[1] != "TABLE" {
        return None;
    }
    let mut at = 2;
    if upper.get(2).map(String::as_str) == Some("IF") {
        at = 5;
    }
    let name = words.get(at)?.split('(').next()?;
    let rest = sql.to_ascii_uppercase();
    if name.is_empty()
        || !sql.contains('(')
        || rest.contains(" AS SELECT")
        || rest.contains(" LIKE ")
    {
        return None;
    }
    Some(name.to_string())
}

/// Whether `sql` is `CREATE [UNIQUE] INDEX ...`: an index outlives TRUNCATE.
fn is_create_index(sql: &str) -> bool {
    let w = leading_words(sql, 3);
    w.first().map(String::as_str) == Some("CREATE")
        && (w.get(1).map(String::as_str) == Some("INDEX")
            || (w.get(1).map(String::as_str) == Some("UNIQUE")
                && w.get(2).map(String::as_str) == Some("INDEX")))
}

/// The TRUNCATE plan for `setup`, or `None` when some statement is not one TRUNCATE can undo.
/// A table option `AUTO_INCREMENT = N` (MariaDB's starting value) is not taken as resettable:
/// what TRUNCATE restarts such a counter at is not something racelab checks.
pub fn truncate_plan(setup: &[String]) -> Option<TruncatePlan> {
    let mut plan = TruncatePlan {
        tables: Vec::new(),
        rows: Vec::new(),
    };
    for stmt in setup {
        let first = leading_words(stmt, 1);
        if let Some(table) = created_table_as_written(stmt) {
            let tail = stmt[stmt.rfind(')').unwrap_or(0)..].to_ascii_uppercase();
            if tail.contains("AUTO_INCREMENT") {
                return None;
            }
            plan.tables.push(table);
        } else if is_create_index(stmt) {
        } else if first.first().map(String::as_str) == Some("INSERT") {
            plan.rows.push(stmt.clone());
        } else {
            return None;
        }
    }
    (!plan.tables.is_empty()).then_some(plan)
}

impl TruncatePlan {
    /// PostgreSQL: one TRUNCATE of every table (RESTART IDENTITY: the SERIAL and identity
    /// sequences the tables own start again; CASCADE: tables referring to them are emptied
    /// too, all being in the plan), then the rows, as one multi-statement query: one round
    /// trip, one implicit transaction.
    pub(crate) fn postgres(&self) -> String {
        let mut sql = format!(
            "TRUNCATE {} RESTART IDENTITY CASCADE",
            self.tables.join(", ")
        );
        for row in &self.rows {
            sql.push_str(";\n");
            sql.push_str(&translate_ddl(row, Dialect::Postgres));
        }
        sql
    }

    /// MariaDB: TRUNCATE takes one table (and restarts its AUTO_INCREMENT); foreign-key checks
    /// are off while the tables are emptied and filled, as the setup's own order may need.
    pub(crate) fn mariadb(&self) -> String {
        let mut sql = String::from("SET FOREIGN_KEY_CHECKS = 0");
        for t in &self.tables {
            sql.push_str(&format!(";\nTRUNCATE TABLE {t}"));
        }
        for row in &self.rows {
            sql.push_str(";\n");
            sql.push_str(&translate_ddl(row, Dialect::MariaDb));
        }
        sql.push_str(";\nSET FOREIGN_KEY_CHECKS = 1");
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(stmts: &[&str]) -> Vec<String> {
        stmts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tables_indexes_and_rows_are_truncated_and_inserted_again() {
        let plan = truncate_plan(&setup(&[
            "CREATE TABLE person (id INTEGER PRIMARY KEY AUTO_INCREMENT, email VARCHAR(9))",
            "create table if not exists \"Patch\"(id SERIAL PRIMARY KEY)",
            "CREATE UNIQUE INDEX person_email ON person (email)",
            "INSERT INTO person (id, email) VALUES (1, 'a')",
        ]))
        .expect("resettable");
        assert_eq!(plan.tables, ["person", "\"Patch\""]);
        assert_eq!(
            plan.rows,
            ["INSERT INTO person (id, email) VALUES (1, 'a')"]
        );
        assert_eq!(
            plan.postgres(),
            "TRUNCATE person, \"Patch\" RESTART IDENTITY CASCADE;\nINSERT INTO person (id, email) VALUES (1, 'a')"
        );
        assert_eq!(
            plan.mariadb(),
            "SET FOREIGN_KEY_CHECKS = 0;\nTRUNCATE TABLE person;\nTRUNCATE TABLE \"Patch\";\nINSERT INTO person (id, email) VALUES (1, 'a');\nSET FOREIGN_KEY_CHECKS = 1"
        );
    }

    #[test]
    fn state_truncate_cannot_restore_falls_back_to_recreating() {
        for other in [
            "CREATE SEQUENCE s",
            "CREATE VIEW v AS SELECT 1",
            "ALTER TABLE t ADD COLUMN x INTEGER",
            "UPDATE t SET x = 1",
            "CREATE TABLE u AS SELECT * FROM t",
            "CREATE TABLE u (id INTEGER PRIMARY KEY AUTO_INCREMENT) AUTO_INCREMENT = 100",
        ] {
            let s = setup(&["CREATE TABLE t (x INTEGER)", other]);
            assert_eq!(truncate_plan(&s), None, "{other}");
        }
        assert_eq!(truncate_plan(&[]), None);
    }
}
