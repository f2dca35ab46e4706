//! One statement attempt on the model database: running it on a copy of the tables, and what
//! it comes to: done, failed (with PostgreSQL's aborted transaction), blocked, or deadlocked.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::exec::{Ctx, LockRef, Stop, Wait};
use super::table::Table;
use super::{exec, ssi, Conn, Db, Flavour, Level, Outcome, MYSQL_DEADLOCK, SQLITE_LOCKED};
use racelab_lang::ir::sql::Stmt;
use racelab_lang::ir::{Errno, Value};

impl Db {
    pub(super) fn run(&mut self, conn: usize, stmt: &Stmt, params: &[Value]) -> Outcome {
        let before = self.conn(conn);
        // Autocommit: the statement is a transaction of its own.
        let implicit = !before.in_txn;
        if implicit {
            self.open_txn(conn, None);
        }
        if self.active_sxact(conn).is_some_and(|x| x.doomed) {
            return self.stop(
                conn,
                implicit,
                before,
                Stop::Failed(Errno::OperationalError, ssi::SSI_FAILURE.to_string()),
                &[],
            );
        }
        if self.flavour == Flavour::Sqlite && !matches!(stmt, Stmt::Select(_)) {
            if let Err(stop) = self.take_write_lock(conn) {
                return self.stop(conn, implicit, before, stop, &[]);
            }
        }
        self.take_snapshot(conn, stmt);
        let state = self.conn(conn);
        let level = state.level.unwrap_or(Level::ReadCommitted);
        let ctx = Ctx {
            flavour: self.flavour,
            conn: Some(conn),
            params,
            snapshot: state.snapshot,
            snapshot_writes: self.flavour == Flavour::Postgres && state.snapshot.is_some(),
            gap_locks: self.flavour == Flavour::InnoDb && level == Level::RepeatableRead,
            ssi: self.active_sxact(conn).map(|_| RefCell::default()),
        };
        let mut tables = self.tables.clone();
        let result = match stmt {
            Stmt::Select(s) => exec::select(&ctx, &mut tables, s),
            Stmt::Insert(i) => exec::insert(&ctx, conn, &mut tables, i),
            Stmt::Update(u) => exec::update(&ctx, conn, &mut tables, u),
            Stmt::Delete(d) => exec::delete(&ctx, conn, &mut tables, d),
            _ => Err(Stop::Failed(
                Errno::ProgrammingError,
                "internal: not a data statement".to_string(),
            )),
        };
        let result = match (result, ctx.ssi.map(RefCell::into_inner)) {
            (Ok(value), Some(trail)) => self.record_ssi(conn, &tables, trail).map(|()| value),
            (Err(Stop::Failed(Errno::IntegrityError, message)), Some(trail)) => self
                .conflict_in(conn, &tables, &trail.writes)
                .and(Err(Stop::Failed(Errno::IntegrityError, message))),
            (result, _) => result,
        };
        match result {
            Ok(value) => {
                self.tables = tables;
                self.waits.remove(&conn);
                // Set only once the statement ran: a blocked one is retried before the
                // connection can send anything else, so nothing could tell the difference.
                if let Some(state) = self.conns.get_mut(&conn) {
                    state.queried = true;
                }
                if implicit {
                    if let Outcome::Failed { error, message } = self.end(conn, true) {
                        return Outcome::Failed { error, message };
                    }
                }
                Outcome::Done(value)
            }
            Err(stop) => self.stop(conn, implicit, before, stop, &tables),
        }
    }

    /// A statement that did not finish: an autocommit one leaves no transaction behind.
    pub(super) fn stop(
        &mut self,
        conn: usize,
        implicit: bool,
        before: Conn,
        stop: Stop,
        attempted: &[Arc<Table>],
    ) -> Outcome {
        if implicit {
            self.finish(conn, false);
            self.set_conn(conn, before);
        }
        match stop {
            Stop::Blocked(wait) => self.block(conn, wait),
            Stop::Failed(error, message) => {
                self.keep_counters(attempted);
                self.fail(conn, error, message)
            }
        }
    }

    /// Auto-increment values a failed statement took stay taken, as in PostgreSQL and InnoDB
    /// (SQLite's rowids come from the rows, see `finish_sqlite`).
    fn keep_counters(&mut self, attempted: &[Arc<Table>]) {
        if self.flavour == Flavour::Sqlite {
            return;
        }
        for (mine, theirs) in self.tables.iter_mut().zip(attempted) {
            if mine.auto_next != theirs.auto_next {
                Arc::make_mut(mine).auto_next = theirs.auto_next;
            }
        }
    }

    /// A failed statement has already left no trace; PostgreSQL also aborts the transaction.
    pub(super) fn fail(&mut self, conn: usize, error: Errno, message: String) -> Outcome {
        self.waits.remove(&conn);
        let state = self.conn(conn);
        if self.flavour == Flavour::Postgres && state.in_txn && self.abort_subtransaction(conn) {
            self.set_conn(
                conn,
                Conn {
                    aborted: true,
                    ..state
                },
            );
        } else if self.flavour == Flavour::Postgres && state.in_txn {
            self.finish(conn, false);
            self.set_conn(
                conn,
                Conn {
                    in_txn: true,
                    aborted: true,
                    ..state.after_txn()
                },
            );
        }
        Outcome::failed(error, message)
    }

    /// Records the wait, unless it closes a cycle: then the requester is the deadlock victim.
    pub(super) fn block(&mut self, conn: usize, wait: Wait) -> Outcome {
        if !self.deadlocked(conn, &wait.on) {
            let outcome = Outcome::Blocked {
                on: wait.on.clone(),
                lock: wait.lock.clone(),
            };
            self.waits.insert(conn, wait);
            return outcome;
        }
        self.waits.remove(&conn);
        match self.flavour {
            Flavour::InnoDb => {
                self.finish(conn, false);
                self.set_conn(conn, self.conn(conn).after_txn());
                Outcome::failed(Errno::OperationalError, MYSQL_DEADLOCK)
            }
            Flavour::Postgres => {
                self.finish(conn, false);
                let state = self.conn(conn);
                self.set_conn(
                    conn,
                    Conn {
                        in_txn: state.in_txn,
                        aborted: state.in_txn,
                        ..state.after_txn()
                    },
                );
                Outcome::failed(Errno::OperationalError, "deadlock detected")
            }
            // Unreachable with one lock (a waiter holds nothing), but SQLite's answer to a wait
            // that could deadlock is SQLITE_BUSY, with the transaction left open.
            Flavour::Sqlite => Outcome::failed(Errno::OperationalError, SQLITE_LOCKED),
        }
    }

    /// Whether `conn`, by waiting for `on`, would wait for itself through the remembered waits.
    fn deadlocked(&self, conn: usize, on: &[usize]) -> bool {
        let mut seen = BTreeSet::new();
        let mut todo = on.to_vec();
        while let Some(c) = todo.pop() {
            if c == conn {
                return true;
            }
            if !seen.insert(c) {
                continue;
            }
            if let Some(w) = self.waits.get(&c) {
                todo.extend(w.on.iter().copied().filter(|&h| self.holds(h, &w.what)));
            }
        }
        false
    }

    /// Whether `conn` still holds the lock a remembered wait was for.
    pub(super) fn holds(&self, conn: usize, what: &LockRef) -> bool {
        match what {
            LockRef::Row { table, row } => self.tables.get(*table).is_some_and(|t| {
                t.rows.iter().any(|r| {
                    r.id == *row
                        && (r.lock.as_ref().is_some_and(|l| l.conn == conn)
                            || r.sharers.contains(&conn)
                            || r.key_sharers.contains(&conn))
                })
            }),
            LockRef::Writer => self.writer == Some(conn),
            LockRef::Gap { table, key, at } => self
                .tables
                .get(*table)
                .is_some_and(|t| t.gaps.iter().any(|g| g.conn == conn && g.covers(*key, at))),
        }
    }
}
