//! Transactions on the model database: BEGIN (and SQLite's write lock), isolation levels,
//! COMMIT/ROLLBACK and what they release, snapshots, and forgetting history no one can see.

use std::sync::Arc;

use super::exec::{LockRef, Stop, Wait};
use super::{Conn, Db, Flavour, Level, Outcome, SQLITE_LOCKED};
use racelab_lang::ir::sql::{Session, Stmt};
use racelab_lang::ir::{Errno, Value};

impl Db {
    pub(super) fn begin(&mut self, conn: usize, level: Option<Level>, immediate: bool) -> Outcome {
        self.waits.remove(&conn);
        if self.conn(conn).in_txn {
            match self.flavour {
                // PostgreSQL only warns ("there is already a transaction in progress").
                Flavour::Postgres => return Outcome::Done(Value::None),
                Flavour::Sqlite => {
                    return self.fail(
                        conn,
                        Errno::OperationalError,
                        "cannot start a transaction within a transaction".to_string(),
                    )
                }
                // MySQL: BEGIN implicitly commits the open transaction.
                Flavour::InnoDb => {
                    self.finish(conn, true);
                    self.set_conn(conn, self.conn(conn).after_txn());
                }
            }
        }
        if immediate {
            // SQLite's BEGIN IMMEDIATE: the write lock now, waiting for it if it is taken.
            if let Err(stop) = self.take_write_lock(conn) {
                return match stop {
                    Stop::Blocked(wait) => self.block(conn, wait),
                    Stop::Failed(error, message) => self.fail(conn, error, message),
                };
            }
        }
        self.open_txn(conn, level);
        Outcome::Done(Value::None)
    }

    /// SQLite: takes the database's write lock for `conn`'s next write. A connection whose
    /// transaction holds no snapshot yet waits for the holder (SQLite's busy handler); one that
    /// does gets SQLITE_BUSY at once (waiting could deadlock), or SQLITE_BUSY_SNAPSHOT when a
    /// commit has overtaken its snapshot.
    pub(super) fn take_write_lock(&mut self, conn: usize) -> Result<(), Stop> {
        let state = self.conn(conn);
        match self.writer {
            Some(holder) if holder == conn => Ok(()),
            Some(_) if state.snapshot.is_some() => Err(Stop::Failed(
                Errno::OperationalError,
                SQLITE_LOCKED.to_string(),
            )),
            Some(holder) => Err(Stop::Blocked(Wait {
                on: vec![holder],
                lock: "the database's write lock (SQLite)".to_string(),
                what: LockRef::Writer,
            })),
            None if state.overtaken => Err(Stop::Failed(
                Errno::OperationalError,
                SQLITE_LOCKED.to_string(),
            )),
            None => {
                self.writer = Some(conn);
                Ok(())
            }
        }
    }

    /// Starts `conn`'s transaction at `level`, or else at the level SET TRANSACTION, SET SESSION
    /// or the flavour gives it.
    pub(super) fn open_txn(&mut self, conn: usize, level: Option<Level>) {
        let state = self.conn(conn);
        let level = level
            .or(state.next_level)
            .or(state.session_level)
            .unwrap_or(self.flavour.default_level());
        self.set_conn(
            conn,
            Conn {
                in_txn: true,
                level: Some(level),
                next_level: None,
                ..state.after_txn()
            },
        );
    }

    /// SET [SESSION] TRANSACTION ISOLATION LEVEL, with each server's rules for when it may run.
    pub(super) fn set_level(&mut self, conn: usize, level: Level, session: Session) -> Outcome {
        self.waits.remove(&conn);
        let mut state = self.conn(conn);
        match (session, self.flavour) {
            (Session::Characteristics | Session::MySql, _) => state.session_level = Some(level),
            // PostgreSQL outside a transaction: a warning, and no effect.
            (Session::Transaction, Flavour::Postgres) if !state.in_txn => {}
            (Session::Transaction, Flavour::Postgres) if state.queried => {
                return self.fail(
                    conn,
                    Errno::ProgrammingError,
                    "SET TRANSACTION ISOLATION LEVEL must be called before any query".to_string(),
                );
            }
            (Session::Transaction, Flavour::Postgres) => state.level = Some(level),
            (Session::Transaction, Flavour::InnoDb) if state.in_txn => {
                return self.fail(conn, Errno::ProgrammingError, "(1568, \"Transaction characteristics can't be changed while a transaction is in progress\")".to_string());
            }
            (Session::Transaction, Flavour::InnoDb) => state.next_level = Some(level),
            // Refused when the scenario is compiled (SQLite has no SET TRANSACTION).
            (Session::Transaction, Flavour::Sqlite) => {
                return self.fail(
                    conn,
                    Errno::OperationalError,
                    "near \"SET\": syntax error".to_string(),
                );
            }
        }
        self.set_conn(conn, state);
        Outcome::Done(Value::None)
    }

    pub(super) fn end(&mut self, conn: usize, commit: bool) -> Outcome {
        self.waits.remove(&conn);
        let outcome = match commit.then(|| self.pre_commit(conn)) {
            Some(Err(message)) => {
                // PostgreSQL: the COMMIT fails and the transaction is rolled back.
                self.finish(conn, false);
                Outcome::failed(Errno::OperationalError, message)
            }
            _ => {
                self.finish(conn, commit);
                Outcome::Done(Value::None)
            }
        };
        self.set_conn(conn, self.conn(conn).after_txn());
        outcome
    }

    /// Commits or rolls back `conn`'s changes and releases its locks, touching only the tables
    /// it has something in (so clones keep sharing the others). A commit made while another
    /// connection holds a snapshot advances the clock and keeps the versions it replaces.
    pub(super) fn finish(&mut self, conn: usize, commit: bool) {
        let others_snapshot = self
            .conns
            .iter()
            .any(|(&c, s)| c != conn && s.snapshot.is_some());
        if commit && others_snapshot {
            self.clock += 1;
        }
        let at = self.clock;
        let mut touched = Vec::new();
        for (i, table) in self.tables.iter_mut().enumerate() {
            if table.touched_by(conn) {
                touched.push(i);
                Arc::make_mut(table).finish(conn, commit, at, others_snapshot);
            }
        }
        if self.flavour == Flavour::Sqlite {
            self.finish_sqlite(conn, commit, &touched);
        }
        self.end_sxact(conn, commit, at);
        self.savepoints.remove(&conn);
        if let Some(state) = self.conns.get_mut(&conn) {
            state.snapshot = None;
        }
        self.forget_history();
    }

    /// SQLite: the write lock goes; a commit that wrote overtakes every other open snapshot; and
    /// in the tables the transaction `touched`, INTEGER PRIMARY KEY goes on from the largest
    /// rowid left, as SQLite's does (no other table's rows changed).
    pub(super) fn finish_sqlite(&mut self, conn: usize, commit: bool, touched: &[usize]) {
        if self.writer == Some(conn) {
            self.writer = None;
        }
        if commit && !touched.is_empty() {
            for (&c, state) in self.conns.iter_mut() {
                if c != conn && state.snapshot.is_some() {
                    state.overtaken = true;
                }
            }
        }
        for &i in touched {
            let Some(table) = self.tables.get_mut(i) else {
                continue;
            };
            let Some(auto) = table.schema.auto else {
                continue;
            };
            let next = table
                .rows
                .iter()
                .filter_map(|r| match r.latest().or(r.committed.as_ref())?.get(auto) {
                    Some(Value::Int(n)) => Some(n.saturating_add(1)),
                    _ => None,
                })
                .max()
                .unwrap_or(1);
            if next != table.auto_next {
                Arc::make_mut(table).auto_next = next;
            }
        }
    }

    /// Drops the versions and SERIALIZABLE transactions no open snapshot needs any more.
    fn forget_history(&mut self) {
        self.prune_sxacts();
        let oldest = self.conns.values().filter_map(|s| s.snapshot).min();
        for table in &mut self.tables {
            let stale = match oldest {
                None => table.has_history(),
                Some(_) => table.rows.iter().any(|r| !r.older.is_empty()),
            };
            if stale {
                Arc::make_mut(table).prune(oldest);
            }
        }
        if oldest.is_none() {
            self.clock = 0;
        }
    }

    /// Takes the transaction's snapshot where its level and server take it: PostgreSQL at the
    /// first statement of a REPEATABLE READ or SERIALIZABLE transaction, InnoDB at the first
    /// plain (non-locking) read of a REPEATABLE READ one.
    pub(super) fn take_snapshot(&mut self, conn: usize, stmt: &Stmt) {
        let mut state = self.conn(conn);
        let level = state.level.unwrap_or(Level::ReadCommitted);
        let wanted = match (self.flavour, level) {
            (Flavour::Sqlite, _) => true,
            (_, Level::ReadCommitted) => false,
            (Flavour::Postgres, _) => true,
            (Flavour::InnoDb, _) => matches!(stmt, Stmt::Select(s) if s.lock.is_none()),
        };
        if wanted && state.snapshot.is_none() {
            state.snapshot = Some(self.clock);
            if level == Level::Serializable && self.flavour == Flavour::Postgres {
                self.start_sxact(conn, self.clock);
            }
            self.set_conn(conn, state);
        }
    }
}
