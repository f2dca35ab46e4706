//! The model world's database: PostgreSQL or MySQL/InnoDB at READ COMMITTED, in memory.
//!
//! Scenario actors each hold a connection and run one SQL statement per step. The exploration
//! engine interleaves their steps, so a statement must be decided on the spot: it finishes
//! ([`Outcome::Done`]), fails ([`Outcome::Failed`]), or would wait for a lock another connection
//! holds ([`Outcome::Blocked`]). A blocked statement changes nothing; the actor retries it later,
//! and the retry simply runs it again on the data as it is then (PostgreSQL re-checks the WHERE
//! of rows it waited for the same way, with EvalPlanQual). The model is pure and deterministic,
//! and a clone is cheap (tables are shared until written), so engines can branch on it freely.
//!
//! What is modelled, and the choices made where the two databases differ:
//!
//! - **Visibility (READ COMMITTED).** A plain SELECT sees committed rows plus its own
//!   transaction's changes, takes no locks and never blocks.
//! - **Row locks.** UPDATE, DELETE and SELECT ... FOR UPDATE lock the rows they match, exclusively,
//!   until the transaction ends; a matched row another transaction holds blocks the statement (on
//!   the first such row in scan order). PostgreSQL matches on the committed version; InnoDB's
//!   locking reads see the newest version, so there a row whose uncommitted version matches
//!   blocks too. INSERT locks its new row.
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
//!   update) into a gap another transaction has locked must wait. This is how InnoDB behaves at
//!   its default REPEATABLE READ; at a real READ COMMITTED InnoDB takes no such gap locks. The
//!   model keeps them because the races it exists for (Patchwork's deadlock) happened at
//!   MySQL's default level. Range scans take no next-key locks.
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

mod ddl;
mod exec;
mod expr;
mod sql;
mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::ir::{Errno, Value};

use exec::{Ctx, LockRef, Stop, Wait};
use sql::Stmt;
use table::Table;

pub use sql::{prepare, Prepared};

/// Which database the model imitates. Both run at READ COMMITTED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavour {
    Postgres,
    InnoDb,
}

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
        Outcome::Failed { error, message: message.into() }
    }
}

/// A lock a connection holds, described for people.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Held {
    pub conn: usize,
    /// "row person(id=3)" or "gap before supremum in patch (next-key lock)".
    pub lock: String,
}

/// A connection's transaction state; the default (autocommit, no transaction) is not stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Conn {
    in_txn: bool,
    /// PostgreSQL: an error happened in the transaction; only ROLLBACK/COMMIT are accepted.
    aborted: bool,
}

/// The connection that runs the setup statements.
const SETUP_CONN: usize = usize::MAX;

const MYSQL_DEADLOCK: &str = "(1213, 'Deadlock found when trying to get lock; try restarting transaction')";

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
}

impl Db {
    /// A database with the tables of the CREATE TABLE statements in `setup` and the rows of its
    /// INSERTs (and any other statements), all committed.
    pub fn new(flavour: Flavour, setup: &[Arc<Prepared>]) -> Result<Db, String> {
        let mut db = Db { flavour, tables: Vec::new(), conns: BTreeMap::new(), waits: BTreeMap::new(), named: Vec::new() };
        for stmt in setup {
            if stmt.params() > 0 {
                return Err(format!("setup statement `{}` has placeholders; setup takes no parameters", stmt.sql()));
            }
            match &stmt.stmt {
                Stmt::Create(c) => db.create(c)?,
                _ => match db.execute(SETUP_CONN, stmt, &[]) {
                    Outcome::Done(_) => {}
                    Outcome::Failed { message, .. } => return Err(format!("setup statement `{}` failed: {message}", stmt.sql())),
                    Outcome::Blocked { lock, .. } => return Err(format!("setup statement `{}` blocked on {lock}", stmt.sql())),
                },
            }
        }
        db.finish(SETUP_CONN, true);
        db.conns.remove(&SETUP_CONN);
        db.start_counters_past_rows();
        Ok(db)
    }

    fn create(&mut self, c: &sql::CreateTable) -> Result<(), String> {
        if self.tables.iter().any(|t| t.schema.name == c.schema.name) {
            return if c.if_not_exists { Ok(()) } else { Err(format!("relation \"{}\" already exists", c.schema.name)) };
        }
        self.tables.push(Arc::new(Table::new(c.schema.clone())));
        Ok(())
    }

    /// Setup may give explicit ids even to a PostgreSQL SERIAL; the scenario's own INSERTs then
    /// start after them rather than colliding with them.
    fn start_counters_past_rows(&mut self) {
        for table in &mut self.tables {
            let Some(auto) = table.schema.auto else { continue };
            let ids = table.rows.iter().filter_map(|r| match r.committed.as_ref()?.get(auto) {
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
                format!("the statement has {} placeholders but {} parameters were given", stmt.params(), params.len()),
            );
        }
        let state = self.conn(conn);
        if state.aborted && !matches!(stmt.stmt, Stmt::Commit | Stmt::Rollback) {
            self.waits.remove(&conn);
            return Outcome::failed(Errno::ProgrammingError, "current transaction is aborted, commands ignored until end of transaction block");
        }
        match &stmt.stmt {
            Stmt::Begin => self.begin(conn),
            Stmt::Commit => self.end(conn, !state.aborted),
            Stmt::Rollback => self.end(conn, false),
            Stmt::Create(_) => self.fail(conn, Errno::ProgrammingError, "CREATE TABLE is only supported in the setup".to_string()),
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

    fn begin(&mut self, conn: usize) -> Outcome {
        self.waits.remove(&conn);
        if self.conn(conn).in_txn && self.flavour == Flavour::InnoDb {
            // MySQL: BEGIN implicitly commits the open transaction. (PostgreSQL only warns.)
            self.finish(conn, true);
        }
        self.set_conn(conn, Conn { in_txn: true, aborted: false });
        Outcome::Done(Value::None)
    }

    fn end(&mut self, conn: usize, commit: bool) -> Outcome {
        self.waits.remove(&conn);
        self.finish(conn, commit);
        self.set_conn(conn, Conn::default());
        Outcome::Done(Value::None)
    }

    /// Commits or rolls back `conn`'s changes and releases its locks, touching only the tables
    /// it has something in (so clones keep sharing the others).
    fn finish(&mut self, conn: usize, commit: bool) {
        for table in &mut self.tables {
            if table.touched_by(conn) {
                Arc::make_mut(table).finish(conn, commit);
            }
        }
    }

    fn run(&mut self, conn: usize, stmt: &Stmt, params: &[Value]) -> Outcome {
        let ctx = Ctx { flavour: self.flavour, conn: Some(conn), params };
        let mut tables = self.tables.clone();
        let result = match stmt {
            Stmt::Select(s) => exec::select(&ctx, &mut tables, s),
            Stmt::Insert(i) => exec::insert(&ctx, conn, &mut tables, i),
            Stmt::Update(u) => exec::update(&ctx, conn, &mut tables, u),
            Stmt::Delete(d) => exec::delete(&ctx, conn, &mut tables, d),
            _ => Err(Stop::Failed(Errno::ProgrammingError, "internal: not a data statement".to_string())),
        };
        match result {
            Ok(value) => {
                self.tables = tables;
                self.waits.remove(&conn);
                if !self.conn(conn).in_txn {
                    self.finish(conn, true);
                }
                Outcome::Done(value)
            }
            Err(Stop::Blocked(wait)) => self.block(conn, wait),
            Err(Stop::Failed(error, message)) => {
                self.keep_counters(&tables);
                self.fail(conn, error, message)
            }
        }
    }

    /// Auto-increment values a failed statement took stay taken, as in both databases.
    fn keep_counters(&mut self, attempted: &[Arc<Table>]) {
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
        if self.flavour == Flavour::Postgres && state.in_txn {
            self.finish(conn, false);
            self.set_conn(conn, Conn { in_txn: true, aborted: true });
        }
        Outcome::failed(error, message)
    }

    /// Records the wait, unless it closes a cycle: then the requester is the deadlock victim.
    fn block(&mut self, conn: usize, wait: Wait) -> Outcome {
        if !self.deadlocked(conn, &wait.on) {
            let outcome = Outcome::Blocked { on: wait.on.clone(), lock: wait.lock.clone() };
            self.waits.insert(conn, wait);
            return outcome;
        }
        self.waits.remove(&conn);
        self.finish(conn, false);
        match self.flavour {
            Flavour::InnoDb => {
                self.set_conn(conn, Conn::default());
                Outcome::failed(Errno::OperationalError, MYSQL_DEADLOCK)
            }
            Flavour::Postgres => {
                let in_txn = self.conn(conn).in_txn;
                self.set_conn(conn, Conn { in_txn, aborted: in_txn });
                Outcome::failed(Errno::OperationalError, "deadlock detected")
            }
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
            LockRef::Row { table, row } => {
                self.tables.get(*table).is_some_and(|t| t.rows.iter().any(|r| r.id == *row && r.lock.as_ref().is_some_and(|l| l.conn == conn)))
            }
            LockRef::Gap { table, key, at } => self.tables.get(*table).is_some_and(|t| t.gaps.iter().any(|g| g.conn == conn && g.covers(*key, at))),
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
        self.named.iter().filter(|(d, open)| *d == db && *open).count()
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
            return Err(format!("the statement has {} placeholders but {} parameters were given", stmt.params(), params.len()));
        }
        let ctx = Ctx { flavour: self.flavour, conn: None, params };
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
                let (Some(lock), Some(vals)) = (&row.lock, row.latest().or(row.committed.as_ref())) else { continue };
                held.push(Held { conn: lock.conn, lock: format!("row {}", t.schema.describe_row(vals)) });
            }
            held.extend(t.gaps.iter().map(|g| Held { conn: g.conn, lock: t.describe_gap(g) }));
        }
        held.sort();
        held
    }

    /// The connections `conn` was last reported Blocked on, and the lock, if it has not run a
    /// statement since.
    pub fn waiting(&self, conn: usize) -> Option<(&[usize], &str)> {
        self.waits.get(&conn).map(|w| (w.on.as_slice(), w.lock.as_str()))
    }

    /// Whether `conn` is inside BEGIN ... COMMIT/ROLLBACK.
    pub fn in_transaction(&self, conn: usize) -> bool {
        self.conn(conn).in_txn
    }

    /// Whether `conn`'s transaction is aborted (PostgreSQL, after an error).
    pub fn is_aborted(&self, conn: usize) -> bool {
        self.conn(conn).aborted
    }

    /// Equal data, locks and transaction states, ignoring the wait-for bookkeeping that a
    /// Blocked outcome records (a blocked statement changes nothing else).
    pub fn same_state(&self, other: &Db) -> bool {
        self.flavour == other.flavour && self.tables == other.tables && self.conns == other.conns && self.named == other.named
    }
}
