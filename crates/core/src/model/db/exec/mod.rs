//! Running one SELECT, INSERT, UPDATE or DELETE against the tables.
//!
//! A statement either finishes (having written into the tables it was given), fails, or stops at
//! the first lock another transaction holds. The caller runs it on a copy of the tables and keeps
//! the copy only when it finished, which makes every statement atomic and makes "blocked" and
//! "failed" leave no trace, whatever the statement had done before it stopped.

use std::cell::RefCell;
use std::sync::Arc;

use racelab_lang::ir::{Errno, Value};

use super::table::{Table, Vals};
use racelab_lang::ir::sql::{Expr, Flavour, Key, Schema};
use racelab_lang::sql::expr::Scope;

mod query;
mod scan;
mod write;

pub(super) use self::query::select;
pub(super) use self::write::{delete, insert, update};

/// Why a statement did not finish.
#[derive(Debug)]
pub(super) enum Stop {
    Blocked(Wait),
    Failed(Errno, String),
}

/// A lock a statement waits for: who holds it, what to call it, and how to find it again (to tell
/// later whether the wait is still real, for deadlock detection).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Wait {
    pub on: Vec<usize>,
    pub lock: String,
    pub what: LockRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum LockRef {
    Row {
        table: usize,
        row: u64,
    },
    /// An insert intention into the gap of index `key` where `at` would go.
    Gap {
        table: usize,
        key: usize,
        at: Vec<Value>,
    },
    /// SQLite's one write lock for the whole database.
    Writer,
}

/// The statement's environment: which database, on whose behalf, with which parameters, and
/// what its transaction's isolation level makes it see.
pub(super) struct Ctx<'a> {
    pub flavour: Flavour,
    /// `None`: a read of committed data only (invariants), which takes no locks.
    pub conn: Option<usize>,
    pub params: &'a [Value],
    /// The commit clock of the transaction's snapshot (REPEATABLE READ, SERIALIZABLE): plain
    /// reads see the versions committed by then. `None`: the latest committed (READ COMMITTED).
    pub snapshot: Option<u64>,
    /// PostgreSQL REPEATABLE READ and SERIALIZABLE: UPDATE, DELETE and locking reads also work on
    /// the snapshot, and fail with 40001 on a row a later commit changed. (InnoDB's act on the
    /// latest committed version whatever the level.)
    pub snapshot_writes: bool,
    /// InnoDB at REPEATABLE READ takes gap locks; at READ COMMITTED it does not.
    pub gap_locks: bool,
    /// SERIALIZABLE (PostgreSQL SSI): what the statement read and wrote, for the caller's
    /// rw-antidependency bookkeeping.
    pub ssi: Option<RefCell<Trail>>,
}

/// A SERIALIZABLE statement's reads and writes, as SSI needs them.
#[derive(Debug, Default)]
pub(super) struct Trail {
    /// The predicates read: (table, WHERE, parameters). A later write by another transaction of
    /// a row version matching one is a rw-antidependency from this transaction to that one.
    pub reads: Vec<PredRead>,
    /// Writers of versions this statement read past (not in its snapshot, but matching): this
    /// transaction has a rw-antidependency to each.
    pub read_past: Vec<Writer>,
    /// Row versions written (old and new), by table: others' earlier reads matching them are
    /// rw-antidependencies to this transaction.
    pub writes: Vec<(usize, Vals)>,
}

/// A predicate a SERIALIZABLE transaction read (PostgreSQL's SIREAD lock, kept exact).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct PredRead {
    pub table: usize,
    pub filter: Option<Expr>,
    pub params: Vec<Value>,
}

impl PredRead {
    /// Whether a row version of this table matches the predicate (an error counts as a match:
    /// conservative, as PostgreSQL's coarser locks are).
    pub fn covers(&self, schema: &Schema, row: &[Value]) -> bool {
        self.filter.as_ref().is_none_or(|f| {
            f.holds(&Scope {
                params: &self.params,
                row: Some((schema, row)),
            })
            .unwrap_or(true)
        })
    }
}

/// Who wrote a version a snapshot did not see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Writer {
    /// The transaction that committed at this clock.
    Committed(u64),
    /// The open transaction of this connection.
    Active(usize),
}

fn programming(msg: String) -> Stop {
    Stop::Failed(Errno::ProgrammingError, msg)
}

impl Ctx<'_> {
    fn innodb(&self) -> bool {
        self.flavour == Flavour::InnoDb
    }

    /// An error in the statement itself: ProgrammingError from psycopg2 and MySQLdb, but
    /// OperationalError from SQLite's drivers (it reports them all as SQLITE_ERROR).
    fn statement_error(&self, message: String) -> Stop {
        match self.flavour {
            Flavour::Sqlite => Stop::Failed(Errno::OperationalError, message),
            Flavour::Postgres | Flavour::InnoDb => programming(message),
        }
    }

    fn find_table(&self, tables: &[Arc<Table>], name: &str) -> Result<usize, Stop> {
        tables
            .iter()
            .position(|t| t.schema.name == name)
            .ok_or_else(|| {
                self.statement_error(match self.flavour {
                    Flavour::Postgres => format!("relation \"{name}\" does not exist"),
                    Flavour::InnoDb => format!("(1146, \"Table '{name}' doesn't exist\")"),
                    Flavour::Sqlite => format!("no such table: {name}"),
                })
            })
    }

    fn no_column(&self, name: &str) -> Stop {
        self.statement_error(match self.flavour {
            Flavour::Postgres => format!("column \"{name}\" does not exist"),
            Flavour::InnoDb => format!("(1054, \"Unknown column '{name}' in 'field list'\")"),
            Flavour::Sqlite => format!("no such column: {name}"),
        })
    }

    /// Every column named in `exprs` exists.
    fn check<'e>(
        &self,
        schema: &Schema,
        exprs: impl IntoIterator<Item = &'e Expr>,
    ) -> Result<(), Stop> {
        exprs
            .into_iter()
            .try_for_each(|e| e.check(schema).map_err(|c| self.no_column(&c)))
    }

    fn scope<'s>(&'s self, schema: &'s Schema, row: &'s [Value]) -> Scope<'s> {
        Scope {
            params: self.params,
            row: Some((schema, row)),
        }
    }

    fn eval(&self, e: &Expr, schema: &Schema, row: &[Value]) -> Result<Value, Stop> {
        e.eval(&self.scope(schema, row)).map_err(programming)
    }

    fn matches(&self, filter: Option<&Expr>, schema: &Schema, row: &[Value]) -> Result<bool, Stop> {
        filter.map_or(Ok(true), |f| {
            f.holds(&self.scope(schema, row)).map_err(programming)
        })
    }

    fn duplicate(&self, schema: &Schema, key: &Key, values: &[Value]) -> Stop {
        let msg = match self.flavour {
            Flavour::Postgres => format!(
                "duplicate key value violates unique constraint \"{}\"",
                key.pg_name
            ),
            Flavour::InnoDb => {
                let entry: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                format!(
                    "(1062, \"Duplicate entry '{}' for key '{}.{}'\")",
                    entry.join("-"),
                    schema.name,
                    key.my_name
                )
            }
            Flavour::Sqlite => {
                let cols: Vec<String> = key
                    .cols
                    .iter()
                    .filter_map(|&c| schema.columns.get(c))
                    .map(|c| format!("{}.{}", schema.name, c.name))
                    .collect();
                format!("UNIQUE constraint failed: {}", cols.join(", "))
            }
        };
        Stop::Failed(Errno::IntegrityError, msg)
    }

    fn key_name<'k>(&self, key: &'k Key) -> &'k str {
        match self.flavour {
            Flavour::Postgres | Flavour::Sqlite => &key.pg_name,
            Flavour::InnoDb => &key.my_name,
        }
    }
}

/// A row a statement applies to: where it is, the version the statement works with, who else
/// holds its lock, and whether a commit after the snapshot changed it.
struct Hit {
    idx: usize,
    vals: Vals,
    /// Other transactions holding locks on the row that the statement's lock conflicts with.
    others: Vec<usize>,
    stale: bool,
}
