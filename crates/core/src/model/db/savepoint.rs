//! PostgreSQL's savepoints on the model: SAVEPOINT remembers the connection's row-level state
//! (the locks it holds and the writes it made, row by row); ROLLBACK TO puts that state back,
//! undoing later writes and releasing later locks (as PostgreSQL's aborted subtransaction
//! does), and ends the aborted state; RELEASE forgets it. An error inside a savepoint rolls
//! back to the newest savepoint at once (PostgreSQL aborts the subtransaction, releasing its
//! locks) and leaves the transaction aborted until ROLLBACK TO.

use std::sync::Arc;

use racelab_lang::ir::{Errno, Value};

use super::table::Lock;
use super::{Db, Flavour, Outcome};

/// A savepoint: its name and the connection's state on each row it held something on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Saved {
    pub name: String,
    pub rows: Vec<SavedRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct SavedRow {
    pub table: String,
    pub row: u64,
    /// The connection's exclusive lock (and write) on the row, and its strength.
    pub lock: Option<Lock>,
    pub no_key: bool,
    pub share: bool,
    pub key_share: bool,
}

impl Db {
    /// The connection's state on every row it holds something on.
    fn save_rows(&self, conn: usize) -> Vec<SavedRow> {
        let mut out = Vec::new();
        for t in &self.tables {
            for r in &t.rows {
                let lock = r.lock.clone().filter(|l| l.conn == conn);
                let share = r.sharers.contains(&conn);
                let key_share = r.key_sharers.contains(&conn);
                if lock.is_some() || share || key_share {
                    out.push(SavedRow {
                        table: t.schema.name.clone(),
                        row: r.id,
                        no_key: lock.is_some() && r.no_key,
                        lock,
                        share,
                        key_share,
                    });
                }
            }
        }
        out
    }

    /// Puts the connection's row-level state back as `saved` has it: later writes and locks go.
    fn restore_rows(&mut self, conn: usize, saved: &[SavedRow]) {
        for table in &mut self.tables {
            let holds = table.rows.iter().any(|r| {
                r.lock.as_ref().is_some_and(|l| l.conn == conn)
                    || r.sharers.contains(&conn)
                    || r.key_sharers.contains(&conn)
            });
            if !holds {
                continue;
            }
            let t = Arc::make_mut(table);
            let name = t.schema.name.clone();
            for r in &mut t.rows {
                let was = saved.iter().find(|s| s.table == name && s.row == r.id);
                if r.lock.as_ref().is_some_and(|l| l.conn == conn) {
                    r.lock = was.and_then(|s| s.lock.clone());
                    r.no_key = was.is_some_and(|s| s.no_key);
                }
                r.sharers.retain(|&c| c != conn);
                r.key_sharers.retain(|&c| c != conn);
                if was.is_some_and(|s| s.share) {
                    r.sharers.push(conn);
                }
                if was.is_some_and(|s| s.key_share) {
                    r.key_sharers.push(conn);
                }
            }
            // A row this connection inserted after the savepoint is gone with it.
            t.rows
                .retain(|r| r.committed.is_some() || r.lock.is_some() || !r.older.is_empty());
        }
    }

    pub(super) fn savepoint(&mut self, conn: usize, name: &str) -> Outcome {
        if self.flavour != Flavour::Postgres {
            return self.fail(
                conn,
                Errno::ProgrammingError,
                "the model has savepoints on PostgreSQL only".into(),
            );
        }
        if !self.conn(conn).in_txn {
            return Outcome::failed(
                Errno::ProgrammingError,
                "SAVEPOINT can only be used in transaction blocks",
            );
        }
        let rows = self.save_rows(conn);
        self.savepoints.entry(conn).or_default().push(Saved {
            name: name.to_string(),
            rows,
        });
        Outcome::Done(Value::None)
    }

    /// The index of the newest savepoint called `name`, or the error PostgreSQL gives.
    fn find_savepoint(&self, conn: usize, name: &str, what: &str) -> Result<usize, String> {
        if !self.conn(conn).in_txn {
            return Err(format!("{what} can only be used in transaction blocks"));
        }
        self.savepoints
            .get(&conn)
            .and_then(|s| s.iter().rposition(|s| s.name == name))
            .ok_or_else(|| format!("savepoint \"{name}\" does not exist"))
    }

    pub(super) fn rollback_to(&mut self, conn: usize, name: &str) -> Outcome {
        let i = match self.find_savepoint(conn, name, "ROLLBACK TO SAVEPOINT") {
            Ok(i) => i,
            Err(e) => return self.fail(conn, Errno::ProgrammingError, e),
        };
        let stack = self.savepoints.entry(conn).or_default();
        stack.truncate(i + 1);
        let rows = stack[i].rows.clone();
        self.restore_rows(conn, &rows);
        let mut state = self.conn(conn);
        state.aborted = false;
        self.set_conn(conn, state);
        Outcome::Done(Value::None)
    }

    pub(super) fn release(&mut self, conn: usize, name: &str) -> Outcome {
        let i = match self.find_savepoint(conn, name, "RELEASE SAVEPOINT") {
            Ok(i) => i,
            Err(e) => return self.fail(conn, Errno::ProgrammingError, e),
        };
        self.savepoints.entry(conn).or_default().truncate(i);
        Outcome::Done(Value::None)
    }

    /// An error in a transaction with a savepoint: back to the newest one (its subtransaction
    /// aborts); true when there was one.
    pub(super) fn abort_subtransaction(&mut self, conn: usize) -> bool {
        let Some(rows) = self
            .savepoints
            .get(&conn)
            .and_then(|s| s.last())
            .map(|s| s.rows.clone())
        else {
            return false;
        };
        self.restore_rows(conn, &rows);
        true
    }
}
