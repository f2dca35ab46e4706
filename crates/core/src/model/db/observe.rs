//! The model database seen from outside: disconnecting, named connections, counts and queries,
//! lock holders and waits, transaction state, and state equality for property tests.

use super::exec::{Ctx, Stop};
use super::{exec, Db, Held, Level, Prepared};
use racelab_lang::ir::sql::Stmt;
use racelab_lang::ir::Value;

impl Db {
    /// The client died: its open transaction rolls back and its locks go.
    pub fn disconnect(&mut self, conn: usize) {
        self.finish(conn, false);
        self.conns.remove(&conn);
        self.waits.remove(&conn);
    }

    /// Opens a connection to named database `db` and returns its handle number (from 1).
    pub fn open_named(&mut self, db: u32) -> usize {
        self.named.push((db, true));
        self.named.len()
    }

    /// Closes connection `handle`; false when there is no such connection. Closing a closed
    /// connection does nothing, as psycopg2's `close()`.
    pub fn close_named(&mut self, handle: usize) -> bool {
        match handle.checked_sub(1).and_then(|i| self.named.get_mut(i)) {
            Some(c) => {
                c.1 = false;
                true
            }
            None => false,
        }
    }

    /// How many connections to named database `db` are open.
    pub fn named_connections(&self, db: u32) -> usize {
        self.named
            .iter()
            .filter(|(d, open)| *d == db && *open)
            .count()
    }

    /// The number of committed rows of `table`, for invariants.
    pub fn count(&self, table: &str) -> Option<usize> {
        let name = table.to_lowercase();
        let t = self.tables.iter().find(|t| t.schema.name == name)?;
        Some(t.rows.iter().filter(|r| r.committed.is_some()).count())
    }

    /// A SELECT on committed data only, taking no locks, for invariants. Returns [`Value::Rows`].
    pub fn query(&self, stmt: &Prepared, params: &[Value]) -> Result<Value, String> {
        let Stmt::Select(select) = &stmt.stmt else {
            return Err(format!("query() runs a SELECT, not `{}`", stmt.sql()));
        };
        if select.lock.is_some() {
            return Err("query() reads committed data without locks; drop FOR UPDATE".to_string());
        }
        if params.len() != stmt.params() {
            return Err(format!(
                "the statement has {} placeholders but {} parameters were given",
                stmt.params(),
                params.len()
            ));
        }
        let ctx = Ctx {
            flavour: self.flavour,
            conn: None,
            params,
            snapshot: None,
            snapshot_writes: false,
            gap_locks: false,
            ssi: None,
        };
        let mut tables = self.tables.clone();
        exec::select(&ctx, &mut tables, select).map_err(|stop| match stop {
            Stop::Failed(_, message) => message,
            Stop::Blocked(wait) => wait.lock,
        })
    }

    /// Every lock held, by connection: row locks (including rows written) and gap locks.
    pub fn holders(&self) -> Vec<Held> {
        let mut held = Vec::new();
        for t in &self.tables {
            for row in &t.rows {
                if let Some(vals) = row.committed.as_ref() {
                    held.extend(row.sharers.iter().map(|&conn| Held {
                        conn,
                        lock: format!("row {} (shared)", t.schema.describe_row(vals)),
                    }));
                    held.extend(row.key_sharers.iter().map(|&conn| Held {
                        conn,
                        lock: format!("row {} (key share)", t.schema.describe_row(vals)),
                    }));
                }
                let (Some(lock), Some(vals)) = (&row.lock, row.latest().or(row.committed.as_ref()))
                else {
                    continue;
                };
                held.push(Held {
                    conn: lock.conn,
                    lock: format!("row {}", t.schema.describe_row(vals)),
                });
            }
            held.extend(t.gaps.iter().map(|g| Held {
                conn: g.conn,
                lock: t.describe_gap(g),
            }));
        }
        if let Some(conn) = self.writer {
            held.push(Held {
                conn,
                lock: "the database's write lock (SQLite)".to_string(),
            });
        }
        held.sort();
        held
    }

    /// The connections `conn` was last reported Blocked on, and the lock, if it has not run a
    /// statement since.
    pub fn waiting(&self, conn: usize) -> Option<(&[usize], &str)> {
        self.waits
            .get(&conn)
            .map(|w| (w.on.as_slice(), w.lock.as_str()))
    }

    /// Whether `conn` is inside BEGIN ... COMMIT/ROLLBACK.
    pub fn in_transaction(&self, conn: usize) -> bool {
        self.conn(conn).in_txn
    }

    /// The isolation level `conn`'s open transaction runs at, or its next one will.
    pub fn isolation_level(&self, conn: usize) -> Level {
        let state = self.conn(conn);
        state
            .level
            .or(state.next_level)
            .or(state.session_level)
            .unwrap_or(self.flavour.default_level())
    }

    /// Whether `conn`'s transaction is aborted (PostgreSQL, after an error).
    pub fn is_aborted(&self, conn: usize) -> bool {
        self.conn(conn).aborted
    }

    /// Equal data, locks and transaction states, ignoring the wait-for bookkeeping that a
    /// Blocked outcome records (a blocked statement changes nothing else).
    pub fn same_state(&self, other: &Db) -> bool {
        self.flavour == other.flavour
            && self.tables == other.tables
            && self.conns == other.conns
            && self.named == other.named
            && self.sxacts == other.sxacts
            && self.clock == other.clock
            && self.writer == other.writer
            && self.savepoints == other.savepoints
    }
}
