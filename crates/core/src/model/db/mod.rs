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
mod observe;
mod savepoint;
mod ssi;
mod statement;
mod table;
mod transaction;

use std::collections::BTreeMap;
use std::sync::Arc;

use racelab_lang::ir::{DatabaseIr, Errno, Value};

use exec::Wait;
use racelab_lang::ir::sql::{CreateTable, Stmt};
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
}
