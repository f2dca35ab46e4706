//! The model world's database: PostgreSQL, MySQL/InnoDB or SQLite, at per-transaction isolation levels, in memory.
//!
//! Scenario actors each hold a connection and run one SQL statement per step. The exploration
//! engine interleaves their steps, so a statement must be decided on the spot: it finishes
//! ([`Outcome::Done`]), fails ([`Outcome::Failed`]), or would wait for a lock another connection
//! holds ([`Outcome::Blocked`]). A blocked statement changes nothing (except that, as in
//! PostgreSQL, a REPEATABLE READ or SERIALIZABLE transaction's first statement has taken its
//! snapshot before it waits); the actor retries it later,
//! and the retry simply runs it again on the data as it is then (PostgreSQL re-checks the WHERE
//! of rows it waited for the same way, with EvalPlanQual). The model is pure and deterministic,
//! and a clone is cheap (tables are shared until written), so engines can branch on it freely.
//!
//! What is modelled, and the choices made where the two databases differ:
//!
//! - **Isolation levels.** PostgreSQL defaults to READ COMMITTED, InnoDB to REPEATABLE READ;
//!   BEGIN ISOLATION LEVEL, SET TRANSACTION and SET SESSION change it as each server allows.
//! - **Visibility.** A plain SELECT takes no locks and never blocks. At READ COMMITTED it sees
//!   committed rows plus its own transaction's changes; at REPEATABLE READ and SERIALIZABLE it
//!   sees the transaction's snapshot (PostgreSQL: taken at the first statement; InnoDB: at the
//!   first plain SELECT) plus its own changes. PostgreSQL's UPDATE, DELETE and FOR UPDATE then
//!   also work on the snapshot and fail with 40001 on rows committed since; InnoDB's act on the
//!   latest committed version. SERIALIZABLE adds PostgreSQL's SSI (`ssi.rs`).
//! - **Row locks.** UPDATE, DELETE and SELECT ... FOR UPDATE lock the rows they match, exclusively,
//!   until the transaction ends; a matched row another transaction holds blocks the statement (on
//!   the first such row in scan order). PostgreSQL matches on the committed version; InnoDB's
//!   locking reads see the newest version, so there a row whose uncommitted version matches
//!   blocks too. INSERT locks its new row. SELECT ... FOR SHARE takes a shared lock: it waits
//!   for an exclusive holder, and exclusive lockers and writers wait for every sharer.
//!   PostgreSQL's four strengths are modelled ([`table::Strength`]): an UPDATE that assigns no
//!   key column (primary key or unique) and FOR NO KEY UPDATE take FOR NO KEY UPDATE, which
//!   FOR KEY SHARE does not wait for; DELETE, a key-assigning UPDATE and FOR UPDATE wait for
//!   every FOR KEY SHARE holder.
//! - **Unique keys.** A committed (or own) row with the same key fails the statement with
//!   IntegrityError; another transaction's uncommitted row with that key (in its old or new
//!   version) blocks the statement until that transaction ends, as in both databases. NULLs
//!   never conflict.
//! - **Errors.** PostgreSQL aborts the whole transaction on any error: its changes are rolled
//!   back and its locks released at once, and every further statement fails with "current
//!   transaction is aborted" until ROLLBACK (or COMMIT, which then rolls back). InnoDB rolls back
//!   just the failed statement.
//! - **InnoDB gap locks.** An UPDATE, DELETE or SELECT ... FOR UPDATE whose WHERE fixes every
//!   column of a unique index (primary key first) to a key that is not in the index locks the gap
//!   where it would be; gap locks do not conflict with each other, but an insert (or key-changing
//!   update) into a gap another transaction has locked must wait. InnoDB takes them at
//!   REPEATABLE READ, not at READ COMMITTED. Range scans take no next-key locks.
//! - **Deadlocks.** Each Blocked outcome is remembered as a wait-for edge (until that connection's
//!   next statement finishes or fails); an edge counts only while its holder still holds the
//!   lock. When a statement would block and the wait-for graph then has a cycle through it, the
//!   requester is the victim. InnoDB rolls back its whole transaction and reports MySQL's 1213
//!   error. PostgreSQL reports "deadlock detected" (both as OperationalError) and aborts the
//!   transaction. Real InnoDB may choose the lighter transaction as victim, and real PostgreSQL
//!   aborts whichever waiter's deadlock_timeout fires first; the model always picks the requester.
//! - **Auto-increment.** A column declared AUTO_INCREMENT/AUTOINCREMENT/SERIAL/identity, or else a
//!   single-column integer primary key, is filled from a per-table counter when an INSERT leaves
//!   it out. The counter is not transactional. An explicit value moves InnoDB's counter past it,
//!   but not PostgreSQL's sequence. After setup, counters start past the setup rows.
//! - **Transactions.** Autocommit unless BEGIN: in autocommit a statement is its own
//!   transaction. BEGIN inside a transaction is a no-op in PostgreSQL and commits the open one
//!   first in MySQL. UPDATE reports matched rows in both (as with MySQL's CLIENT_FOUND_ROWS,
//!   which Django sets).
//! - **Order.** Without ORDER BY, rows come in PostgreSQL's insertion order or InnoDB's primary
//!   key order.
//! - **SQLite** (WAL mode, as the real backend runs it) has no row locks and no levels to
//!   choose: one connection at a time holds the database's write lock, from its first write (or
//!   BEGIN IMMEDIATE) to the end of its transaction. A transaction reads the snapshot of its first
//!   statement. A write that finds the lock taken waits for it (the busy handler), unless its
//!   transaction already holds a snapshot: then SQLite returns SQLITE_BUSY at once, since waiting
//!   could deadlock; and a transaction whose snapshot a commit has overtaken can never write
//!   (SQLITE_BUSY_SNAPSHOT). Both are "database is locked". A failed statement rolls back only
//!   itself, and INTEGER PRIMARY KEY takes max(rowid) + 1, so a rolled-back id is used again.

mod catalog;
mod exec;
mod savepoint;
mod ssi;
mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use racelab_lang::ir::{DatabaseIr, Errno, Value};

use std::cell::RefCell;

use racelab_lang::ir::sql::{CreateTable, Session, Stmt};
use exec::{Ctx, LockRef, Stop, Wait};
use ssi::Sxact;
use table::Table;

pub use racelab_lang::ir::sql::{Flavour, Level, Prepared};
pub use racelab_lang::sql::{prepare, with_plain_lock_clause};

/// What a statement attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// SELECT: [`Value::Rows`]; INSERT/UPDATE/DELETE: the number of rows affected as
    /// [`Value::Int`]; BEGIN/COMMIT/ROLLBACK: [`Value::None`].
    Done(Value),
    /// The statement failed; `message` is what the Python driver would show.
    Failed { error: Errno, message: String },
    /// The statement must wait for a lock held by the connections `on`, described by `lock`
    /// (e.g. "row person(id=3)"). Nothing changed; retry it when they finish.
    Blocked { on: Vec<usize>, lock: String },
}

impl Outcome {
    fn failed(error: Errno, message: impl Into<String>) -> Outcome {
        Outcome::Failed {
            error,
            message: message.into(),
        }
    }
}

/// A lock a connection holds, described for people.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Held {
    pub conn: usize,
    /// "row person(id=3)" or "gap before supremum in patch (next-key lock)".
    pub lock: String,
}

/// A connection's transaction state; the default (autocommit, no transaction, the flavour's
/// default level) is not stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Conn {
    in_txn: bool,
    /// PostgreSQL: an error happened in the transaction; only ROLLBACK/COMMIT are accepted.
    aborted: bool,
    /// The open transaction's isolation level.
    level: Option<Level>,
    /// The open transaction ran a statement (PostgreSQL refuses SET TRANSACTION after that).
    queried: bool,
    /// The commit clock of the open transaction's snapshot, once taken.
    snapshot: Option<u64>,
    /// MySQL's SET TRANSACTION outside a transaction: the next transaction's level.
    next_level: Option<Level>,
    /// SET SESSION ...: the level of the connection's later transactions.
    session_level: Option<Level>,
    /// SQLite: a commit that changed data came after this transaction's snapshot, so it can
    /// never write (SQLITE_BUSY_SNAPSHOT).
    overtaken: bool,
}

impl Conn {
    /// The state after the transaction ends: only the session's level stays.
    fn after_txn(self) -> Conn {
        Conn {
            session_level: self.session_level,
            next_level: self.next_level,
            ..Conn::default()
        }
    }
}

/// The connection that runs the setup statements.
const SETUP_CONN: usize = usize::MAX;

/// SQLite's SQLITE_BUSY and SQLITE_BUSY_SNAPSHOT, as every driver shows them.
const SQLITE_LOCKED: &str = "database is locked";

const MYSQL_DEADLOCK: &str =
    "(1213, 'Deadlock found when trying to get lock; try restarting transaction')";

/// The database: tables, open transactions, and the waits remembered for deadlock detection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Db {
    flavour: Flavour,
    tables: Vec<Arc<Table>>,
    conns: BTreeMap<usize, Conn>,
    /// The last Blocked outcome of each connection that has not run a statement since.
    waits: BTreeMap<usize, Wait>,
    /// Connections to the server's other databases (`connect("NAME")`), by handle number - 1:
    /// the database's index among the named ones, and whether the connection is still open.
    named: Vec<(u32, bool)>,
    /// The commit clock: it advances at each commit while a snapshot is open, and is 0 again
    /// (with every commit stamp) once none is, so states without snapshots stay canonical.
    clock: u64,
    /// SERIALIZABLE transactions, open or overlapping an open one (SSI).
    sxacts: Vec<Sxact>,
    next_sxact: u64,
    /// SQLite: the connection holding the database's write lock.
    writer: Option<usize>,
    /// PostgreSQL: each connection's open savepoints, oldest first.
    savepoints: BTreeMap<usize, Vec<savepoint::Saved>>,
}

impl Db {
    /// The database a scenario's actors start from: `d`'s setup statements run on a fresh one.
    /// Lowering ran the same statements on the same flavour, which is deterministic, so they
    /// succeed here.
    pub fn initial(d: &DatabaseIr) -> Db {
        Db::new(d.flavour, &d.setup).expect("the setup ran when the scenario was lowered")
    }

    /// A database with the tables of the CREATE TABLE statements in `setup` and the rows of its
    /// INSERTs (and any other statements), all committed.
    pub fn new(flavour: Flavour, setup: &[Arc<Prepared>]) -> Result<Db, String> {
        let mut db = Db {
            flavour,
            tables: Vec::new(),
            conns: BTreeMap::new(),
            waits: BTreeMap::new(),
            named: Vec::new(),
            clock: 0,
            sxacts: Vec::new(),
            next_sxact: 0,
            writer: None,
            savepoints: BTreeMap::new(),
        };
        for stmt in setup {
            if stmt.params() > 0 {
                return Err(format!(
                    "setup statement `{}` has placeholders; setup takes no parameters",
                    stmt.sql()
                ));
            }
            match &stmt.stmt {
                Stmt::Create(c) => db.create(c)?,
                _ => match db.execute(SETUP_CONN, stmt, &[]) {
                    Outcome::Done(_) => {}
                    Outcome::Failed { message, .. } => {
                        return Err(format!(
                            "setup statement `{}` failed: {message}",
                            stmt.sql()
                        ))
                    }
                    Outcome::Blocked { lock, .. } => {
                        return Err(format!(
                            "setup statement `{}` blocked on {lock}",
                            stmt.sql()
                        ))
                    }
                },
            }
        }
        db.finish(SETUP_CONN, true);
        db.conns.remove(&SETUP_CONN);
        db.start_counters_past_rows();
        Ok(db)
    }

    fn create(&mut self, c: &CreateTable) -> Result<(), String> {
        if self.tables.iter().any(|t| t.schema.name == c.schema.name) {
            return if c.if_not_exists {
                Ok(())
            } else {
                Err(format!("relation \"{}\" already exists", c.schema.name))
            };
        }
        self.tables.push(Arc::new(Table::new(c.schema.clone())));
        Ok(())
    }

    /// Setup may give explicit ids even to a PostgreSQL SERIAL; the scenario's own INSERTs then
    /// start after them rather than colliding with them.
    fn start_counters_past_rows(&mut self) {
        for table in &mut self.tables {
            let Some(auto) = table.schema.auto else {
                continue;
            };
            let ids = table
                .rows
                .iter()
                .filter_map(|r| match r.committed.as_ref()?.get(auto) {
                    Some(Value::Int(n)) => Some(*n),
                    _ => None,
                });
            let max = ids.max();
            if let Some(max) = max.filter(|&m| m >= table.auto_next) {
                Arc::make_mut(table).auto_next = max.saturating_add(1);
            }
        }
    }

    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// Runs one statement on connection `conn` (any number; connections need no opening).
    pub fn execute(&mut self, conn: usize, stmt: &Prepared, params: &[Value]) -> Outcome {
        if params.len() != stmt.params() {
            // The driver refuses before anything reaches the server.
            self.waits.remove(&conn);
            return Outcome::failed(
                Errno::ProgrammingError,
                format!(
                    "the statement has {} placeholders but {} parameters were given",
                    stmt.params(),
                    params.len()
                ),
            );
        }
        let state = self.conn(conn);
        if state.aborted
            && !matches!(
                stmt.stmt,
                Stmt::Commit | Stmt::Rollback | Stmt::RollbackTo(_)
            )
        {
            self.waits.remove(&conn);
            return Outcome::failed(
                Errno::ProgrammingError,
                "current transaction is aborted, commands ignored until end of transaction block",
            );
        }
        match &stmt.stmt {
            Stmt::Begin { level, immediate } => self.begin(conn, *level, *immediate),
            Stmt::SetLevel { level, session } => self.set_level(conn, *level, *session),
            Stmt::Commit | Stmt::Rollback if self.flavour == Flavour::Sqlite && !state.in_txn => {
                let what = if matches!(stmt.stmt, Stmt::Commit) {
                    "commit"
                } else {
                    "rollback"
                };
                self.fail(
                    conn,
                    Errno::OperationalError,
                    format!("cannot {what} - no transaction is active"),
                )
            }
            Stmt::Savepoint(name) => self.savepoint(conn, name),
            Stmt::RollbackTo(name) => self.rollback_to(conn, name),
            Stmt::Release(name) => self.release(conn, name),
            Stmt::Commit => self.end(conn, !state.aborted),
            Stmt::Rollback => self.end(conn, false),
            Stmt::Create(_) => self.fail(
                conn,
                Errno::ProgrammingError,
                "CREATE TABLE is only supported in the setup".to_string(),
            ),
            _ => self.run(conn, &stmt.stmt, params),
        }
    }

    fn conn(&self, conn: usize) -> Conn {
        self.conns.get(&conn).copied().unwrap_or_default()
    }

    fn set_conn(&mut self, conn: usize, state: Conn) {
        if state == Conn::default() {
            self.conns.remove(&conn);
        } else {
            self.conns.insert(conn, state);
        }
    }

    fn begin(&mut self, conn: usize, level: Option<Level>, immediate: bool) -> Outcome {
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
    fn take_write_lock(&mut self, conn: usize) -> Result<(), Stop> {
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
    fn open_txn(&mut self, conn: usize, level: Option<Level>) {
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
    fn set_level(&mut self, conn: usize, level: Level, session: Session) -> Outcome {
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

    fn end(&mut self, conn: usize, commit: bool) -> Outcome {
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
    fn finish(&mut self, conn: usize, commit: bool) {
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
    fn finish_sqlite(&mut self, conn: usize, commit: bool, touched: &[usize]) {
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
    fn take_snapshot(&mut self, conn: usize, stmt: &Stmt) {
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

    fn run(&mut self, conn: usize, stmt: &Stmt, params: &[Value]) -> Outcome {
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
    fn stop(
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
    fn fail(&mut self, conn: usize, error: Errno, message: String) -> Outcome {
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
    fn block(&mut self, conn: usize, wait: Wait) -> Outcome {
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
    fn holds(&self, conn: usize, what: &LockRef) -> bool {
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
