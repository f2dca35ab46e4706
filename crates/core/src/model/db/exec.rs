//! Running one SELECT, INSERT, UPDATE or DELETE against the tables.
//!
//! A statement either finishes (having written into the tables it was given), fails, or stops at
//! the first lock another transaction holds. The caller runs it on a copy of the tables and keeps
//! the copy only when it finished, which makes every statement atomic and makes "blocked" and
//! "failed" leave no trace, whatever the statement had done before it stopped.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use racelab_lang::ir::{Errno, Value};

use racelab_lang::sql::expr::{coerce, order, Scope};
use super::table::{GapLock, Lock, Row, Table, Vals, Write};
use racelab_lang::ir::sql::{
    CmpOp, Delete, Expr, Flavour, Insert, Key, LockMode, Projection, Schema, Select, Strength, Ty,
    Update,
};

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

/// The order a scan visits rows in: PostgreSQL's heap (insertion) order, InnoDB's clustered
/// index (primary key) order, SQLite's rowid order (the key when it is an INTEGER PRIMARY KEY,
/// else insertion order).
fn scan_order(table: &Table, flavour: Flavour) -> Vec<usize> {
    let mut order: Vec<usize> = (0..table.rows.len()).collect();
    let clustered = match flavour {
        Flavour::InnoDb => table.schema.primary(),
        Flavour::Sqlite => table
            .schema
            .primary()
            .filter(|pk| table.schema.auto.is_some_and(|a| pk.cols == [a])),
        Flavour::Postgres => None,
    };
    if let Some(pk) = clustered {
        let key = |r: &Row| {
            r.latest()
                .or(r.committed.as_ref())
                .and_then(|v| table.schema.key_of(pk, v))
        };
        order.sort_by_cached_key(|&i| table.rows.get(i).and_then(key));
    }
    order
}

/// The rows the WHERE selects, in scan order. A plain read looks at the version READ COMMITTED
/// shows this connection. A locking statement (`locking`) must also stop at rows another
/// transaction holds: in PostgreSQL those whose committed version matches; in InnoDB, whose
/// locking reads see the newest version, also those whose uncommitted version matches. A
/// `shared` lock (FOR SHARE) conflicts only with exclusive ones.
fn scan(
    ctx: &Ctx<'_>,
    t: usize,
    table: &Table,
    filter: Option<&Expr>,
    locking: bool,
    want: Strength,
) -> Result<Vec<Hit>, Stop> {
    let schema = &table.schema;
    let snapshot = if locking && !ctx.snapshot_writes {
        None
    } else {
        ctx.snapshot
    };
    if let Some(trail) = &ctx.ssi {
        let read = PredRead {
            table: t,
            filter: filter.cloned(),
            params: ctx.params.to_vec(),
        };
        let mut trail = trail.borrow_mut();
        if !trail.reads.contains(&read) {
            trail.reads.push(read);
        }
    }
    let mut hits = Vec::new();
    for idx in scan_order(table, ctx.flavour) {
        let Some(row) = table.rows.get(idx) else {
            continue;
        };
        let others = if locking {
            row.conflicts(ctx.conn, want)
        } else {
            Vec::new()
        };
        let visible = match row.visible_at(ctx.conn, snapshot) {
            Some(v) if ctx.matches(filter, schema, v)? => Some(v),
            _ => None,
        };
        let newest = match (others.is_empty(), ctx.innodb(), row.latest()) {
            (false, true, Some(v)) if ctx.matches(filter, schema, v)? => Some(v),
            _ => None,
        };
        if ctx.ssi.is_some() {
            read_past(ctx, schema, row, snapshot, filter, visible.is_some())?;
        }
        if let Some(vals) = visible.or(newest) {
            let own = row.lock.as_ref().is_some_and(|l| Some(l.conn) == ctx.conn);
            let stale = !own && snapshot.is_some_and(|at| row.committed_at > at);
            hits.push(Hit {
                idx,
                vals: vals.clone(),
                others,
                stale,
            });
        }
    }
    Ok(hits)
}

/// SSI: the writers of the versions of `row` a SERIALIZABLE read did not see (another
/// transaction's pending write, versions committed after its snapshot), where either that
/// version or the one it saw matches the WHERE: a rw-antidependency from the reader to each.
fn read_past(
    ctx: &Ctx<'_>,
    schema: &Schema,
    row: &Row,
    snapshot: Option<u64>,
    filter: Option<&Expr>,
    saw_match: bool,
) -> Result<(), Stop> {
    let Some(trail) = &ctx.ssi else { return Ok(()) };
    let mut unseen: Vec<(Writer, Option<&Vals>)> = Vec::new();
    if let Some(lock) = row.lock.as_ref().filter(|l| Some(l.conn) != ctx.conn) {
        match &lock.write {
            Write::Put(v) => unseen.push((Writer::Active(lock.conn), Some(v))),
            Write::Deleted => unseen.push((Writer::Active(lock.conn), None)),
            Write::Locked => {}
        }
    }
    if let Some(at) = snapshot {
        if row.committed_at > at {
            unseen.push((Writer::Committed(row.committed_at), row.committed.as_ref()));
        }
        unseen.extend(
            row.older
                .iter()
                .filter(|(ts, _)| *ts > at)
                .map(|(ts, v)| (Writer::Committed(*ts), v.as_ref())),
        );
    }
    for (writer, version) in unseen {
        let matches = match version {
            Some(v) => ctx.matches(filter, schema, v).unwrap_or(true),
            None => false,
        };
        if matches || saw_match {
            trail.borrow_mut().read_past.push(writer);
        }
    }
    Ok(())
}

/// SSI: a row version this statement wrote (or, for a duplicate key, would have met).
fn wrote(ctx: &Ctx<'_>, t: usize, vals: &Vals) {
    if let Some(trail) = &ctx.ssi {
        trail.borrow_mut().writes.push((t, vals.clone()));
    }
}

/// PostgreSQL REPEATABLE READ/SERIALIZABLE: UPDATE, DELETE or SELECT ... FOR UPDATE of a row
/// that a transaction committed after the snapshot changed.
fn check_not_stale(ctx: &Ctx<'_>, table: &Table, hits: &[Hit]) -> Result<(), Stop> {
    if !ctx.snapshot_writes {
        return Ok(());
    }
    match hits
        .iter()
        .find(|h| h.stale)
        .and_then(|h| table.rows.get(h.idx))
    {
        Some(row) => Err(Stop::Failed(
            Errno::OperationalError,
            format!(
                "could not serialize access due to concurrent {}",
                if row.committed.is_none() {
                    "delete"
                } else {
                    "update"
                }
            ),
        )),
        None => Ok(()),
    }
}

/// The wait for the first row in `hits` another transaction holds, if there is one.
fn first_conflict(table_idx: usize, table: &Table, hits: &[Hit]) -> Option<Wait> {
    let hit = hits.iter().find(|h| !h.others.is_empty())?;
    let row = table.rows.get(hit.idx)?;
    Some(Wait {
        on: hit.others.clone(),
        lock: format!("row {}", table.schema.describe_row(&hit.vals)),
        what: LockRef::Row {
            table: table_idx,
            row: row.id,
        },
    })
}

/// Takes `conn`'s exclusive lock on the row (of strength `want`: NoKeyUpdate or Update),
/// keeping any write it already made; a stronger request upgrades it.
fn lock_row(table: &mut Table, idx: usize, conn: usize, want: Strength) {
    if let Some(row) = table.rows.get_mut(idx) {
        let held = row.lock.as_ref().is_some_and(|l| l.conn == conn);
        row.no_key = if held {
            row.no_key && want != Strength::Update
        } else {
            want == Strength::NoKeyUpdate
        };
        row.lock.get_or_insert(Lock {
            conn,
            write: Write::Locked,
        });
    }
}

/// Takes `conn`'s shared lock on the row (FOR SHARE, or FOR KEY SHARE), unless it holds a
/// lock at least as strong already.
fn share_row(table: &mut Table, idx: usize, conn: usize, want: Strength) {
    if let Some(row) = table.rows.get_mut(idx) {
        let exclusive = row.lock.as_ref().is_some_and(|l| l.conn == conn);
        let list = if want == Strength::KeyShare {
            if row.sharers.contains(&conn) {
                return;
            }
            &mut row.key_sharers
        } else {
            &mut row.sharers
        };
        if !exclusive && !list.contains(&conn) {
            list.push(conn);
        }
    }
}

fn write_row(table: &mut Table, idx: usize, conn: usize, write: Write, want: Strength) {
    if let Some(row) = table.rows.get_mut(idx) {
        let held = row.lock.as_ref().is_some_and(|l| l.conn == conn);
        row.no_key = if held {
            row.no_key && want != Strength::Update
        } else {
            want == Strength::NoKeyUpdate
        };
        row.lock = Some(Lock { conn, write });
    }
}

pub(super) fn select(ctx: &Ctx<'_>, tables: &mut [Arc<Table>], s: &Select) -> Result<Value, Stop> {
    let t = ctx.find_table(tables, &s.table)?;
    let Some(table) = tables.get_mut(t) else {
        return Err(programming("internal: table vanished".into()));
    };
    let schema = Arc::clone(&table.schema);
    let projected = match &s.projection {
        Projection::Exprs(exprs) => exprs.as_slice(),
        Projection::Star | Projection::CountStar => &[],
    };
    ctx.check(
        &schema,
        s.filter
            .iter()
            .chain(projected)
            .chain(s.order.iter().map(|(e, _)| e)),
    )?;
    let locking = s.lock.filter(|_| ctx.conn.is_some());
    let mut hits = scan(
        ctx,
        t,
        table,
        s.filter.as_ref(),
        locking.is_some(),
        s.strength,
    )?;
    if locking == Some(LockMode::SkipLocked) {
        hits.retain(|h| h.others.is_empty());
    }
    sort(ctx, &schema, &mut hits, &s.order)?;
    if let Some(limit) = &s.limit {
        hits.truncate(limit_value(ctx, limit)?);
    }
    if let (Some(mode), Some(conn)) = (locking, ctx.conn) {
        if let Some(wait) = first_conflict(t, table, &hits) {
            return Err(match mode {
                LockMode::NoWait => nowait(ctx.flavour, &schema.name),
                _ => Stop::Blocked(wait),
            });
        }
        if s.strength == Strength::KeyShare {
            // A KEY SHARE lock does not conflict with a committed update that kept the key:
            // PostgreSQL locks the newer version without a serialization failure.
            for h in &mut hits {
                let kept = table.rows.get(h.idx).and_then(|r| r.committed.as_ref());
                if h.stale
                    && kept.is_some_and(|now| {
                        schema
                            .keys
                            .iter()
                            .all(|k| k.cols.iter().all(|&c| now.get(c) == h.vals.get(c)))
                    })
                {
                    h.stale = false;
                }
            }
        }
        check_not_stale(ctx, table, &hits)?;
        gap_lock_if_absent(ctx, table, conn, s.filter.as_ref());
        if !hits.is_empty() {
            let table = Arc::make_mut(table);
            match s.strength {
                Strength::KeyShare | Strength::Share => hits
                    .iter()
                    .for_each(|h| share_row(table, h.idx, conn, s.strength)),
                Strength::NoKeyUpdate | Strength::Update => hits
                    .iter()
                    .for_each(|h| lock_row(table, h.idx, conn, s.strength)),
            }
        }
    }
    project(ctx, &schema, &hits, &s.projection)
}

fn nowait(flavour: Flavour, table: &str) -> Stop {
    Stop::Failed(
        Errno::OperationalError,
        match flavour {
            Flavour::Postgres => format!("could not obtain lock on row in relation \"{table}\""),
            Flavour::InnoDb => "(3572, 'Statement aborted because lock(s) could not be acquired immediately and NOWAIT is set.')".to_string(),
            // Refused when the scenario is compiled: SQLite has no FOR UPDATE.
            Flavour::Sqlite => "database is locked".to_string(),
        },
    )
}

fn limit_value(ctx: &Ctx<'_>, limit: &Expr) -> Result<usize, Stop> {
    match limit
        .eval(&Scope {
            params: ctx.params,
            row: None,
        })
        .map_err(programming)?
    {
        Value::Int(n) if n >= 0 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        v => Err(programming(format!(
            "LIMIT must be a non-negative integer, not {v}"
        ))),
    }
}

/// ORDER BY, stable (ties keep scan order). NULLs sort last ascending in PostgreSQL and first
/// in MySQL.
fn sort(
    ctx: &Ctx<'_>,
    schema: &Schema,
    hits: &mut Vec<Hit>,
    order_by: &[(Expr, bool)],
) -> Result<(), Stop> {
    if order_by.is_empty() {
        return Ok(());
    }
    let mut keyed = Vec::with_capacity(hits.len());
    for hit in hits.drain(..) {
        let key = order_by
            .iter()
            .map(|(e, _)| ctx.eval(e, schema, &hit.vals))
            .collect::<Result<Vec<_>, _>>()?;
        keyed.push((key, hit));
    }
    let nulls_high = ctx.flavour == Flavour::Postgres;
    keyed.sort_by(|(a, _), (b, _)| {
        for ((x, y), (_, desc)) in a.iter().zip(b).zip(order_by) {
            let o = sort_cmp(x, y, nulls_high);
            if o.is_ne() {
                return if *desc { o.reverse() } else { o };
            }
        }
        Ordering::Equal
    });
    hits.extend(keyed.into_iter().map(|(_, h)| h));
    Ok(())
}

fn sort_cmp(x: &Value, y: &Value, nulls_high: bool) -> Ordering {
    match (x, y) {
        (Value::None, Value::None) => Ordering::Equal,
        (Value::None, _) => {
            if nulls_high {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        (_, Value::None) => {
            if nulls_high {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        _ => order(x, y).ok().flatten().unwrap_or_else(|| x.cmp(y)),
    }
}

fn project(
    ctx: &Ctx<'_>,
    schema: &Schema,
    hits: &[Hit],
    projection: &Projection,
) -> Result<Value, Stop> {
    let rows = match projection {
        Projection::CountStar => vec![vec![Value::Int(
            i64::try_from(hits.len()).unwrap_or(i64::MAX),
        )]],
        Projection::Star => hits.iter().map(|h| h.vals.to_vec()).collect(),
        Projection::Exprs(exprs) => {
            let row = |h: &Hit| {
                exprs
                    .iter()
                    .map(|e| ctx.eval(e, schema, &h.vals))
                    .collect::<Result<Vec<_>, _>>()
            };
            hits.iter().map(row).collect::<Result<_, _>>()?
        }
    };
    Ok(Value::Rows(Arc::new(rows)))
}

pub(super) fn update(
    ctx: &Ctx<'_>,
    conn: usize,
    tables: &mut [Arc<Table>],
    u: &Update,
) -> Result<Value, Stop> {
    let t = ctx.find_table(tables, &u.table)?;
    let Some(table) = tables.get_mut(t) else {
        return Err(programming("internal: table vanished".into()));
    };
    let schema = Arc::clone(&table.schema);
    let sets = u
        .sets
        .iter()
        .map(|(c, e)| {
            schema
                .column(c)
                .map(|i| (i, e))
                .ok_or_else(|| ctx.no_column(c))
        })
        .collect::<Result<Vec<_>, _>>()?;
    ctx.check(
        &schema,
        u.filter.iter().chain(u.sets.iter().map(|(_, e)| e)),
    )?;
    // PostgreSQL: an UPDATE that assigns no key column locks FOR NO KEY UPDATE (PostgreSQL
    // looks at whether the value changes; assigning is near enough for the specs' UPDATEs).
    let assigns_key = sets
        .iter()
        .any(|(c, _)| schema.keys.iter().any(|k| k.cols.contains(c)));
    let want = if ctx.flavour == Flavour::Postgres && !assigns_key {
        Strength::NoKeyUpdate
    } else {
        Strength::Update
    };
    let hits = scan(ctx, t, table, u.filter.as_ref(), true, want)?;
    if let Some(wait) = first_conflict(t, table, &hits) {
        return Err(Stop::Blocked(wait));
    }
    check_not_stale(ctx, table, &hits)?;
    gap_lock_if_absent(ctx, table, conn, u.filter.as_ref());
    if hits.is_empty() {
        return Ok(Value::Int(0));
    }
    let table = Arc::make_mut(table);
    for hit in &hits {
        let new = updated_row(ctx, &schema, &hit.vals, &sets)?;
        check_row(ctx, &schema, &new)?;
        check_unique(ctx, t, table, conn, &new, Some(hit.idx))?;
        check_insert_intention(ctx, t, table, conn, &new, Some(&hit.vals))?;
        let new: Vals = new.into();
        wrote(ctx, t, &hit.vals);
        wrote(ctx, t, &new);
        write_row(table, hit.idx, conn, Write::Put(new), want);
    }
    Ok(Value::Int(i64::try_from(hits.len()).unwrap_or(i64::MAX)))
}

/// The new version of a row. PostgreSQL evaluates every SET expression on the old row; MySQL
/// evaluates them left to right, each seeing the assignments before it.
fn updated_row(
    ctx: &Ctx<'_>,
    schema: &Schema,
    old: &[Value],
    sets: &[(usize, &Expr)],
) -> Result<Vec<Value>, Stop> {
    let mut new = old.to_vec();
    for &(col, e) in sets {
        let source = if ctx.innodb() { new.as_slice() } else { old };
        let v = ctx.eval(e, schema, source)?;
        let ty = schema.columns.get(col).map_or(Ty::Text(None), |c| c.ty);
        if let Some(slot) = new.get_mut(col) {
            *slot = coerce(ty, v).map_err(programming)?;
        }
    }
    Ok(new)
}

pub(super) fn delete(
    ctx: &Ctx<'_>,
    conn: usize,
    tables: &mut [Arc<Table>],
    d: &Delete,
) -> Result<Value, Stop> {
    let t = ctx.find_table(tables, &d.table)?;
    let Some(table) = tables.get_mut(t) else {
        return Err(programming("internal: table vanished".into()));
    };
    ctx.check(&table.schema, d.filter.iter())?;
    let hits = scan(ctx, t, table, d.filter.as_ref(), true, Strength::Update)?;
    if let Some(wait) = first_conflict(t, table, &hits) {
        return Err(Stop::Blocked(wait));
    }
    check_not_stale(ctx, table, &hits)?;
    gap_lock_if_absent(ctx, table, conn, d.filter.as_ref());
    if hits.is_empty() {
        return Ok(Value::Int(0));
    }
    let table = Arc::make_mut(table);
    for h in &hits {
        wrote(ctx, t, &h.vals);
        write_row(table, h.idx, conn, Write::Deleted, Strength::Update);
    }
    Ok(Value::Int(i64::try_from(hits.len()).unwrap_or(i64::MAX)))
}

pub(super) fn insert(
    ctx: &Ctx<'_>,
    conn: usize,
    tables: &mut [Arc<Table>],
    i: &Insert,
) -> Result<Value, Stop> {
    let t = ctx.find_table(tables, &i.table)?;
    let Some(table) = tables.get_mut(t) else {
        return Err(programming("internal: table vanished".into()));
    };
    let table = Arc::make_mut(table);
    let schema = Arc::clone(&table.schema);
    let targets = target_columns(ctx, &schema, i.columns.as_deref())?;
    for (n, exprs) in i.rows.iter().enumerate() {
        if exprs.len() != targets.len() {
            return Err(ctx.statement_error(match ctx.flavour {
                Flavour::Postgres => format!(
                    "INSERT has {} expressions but {} target columns",
                    exprs.len(),
                    targets.len()
                ),
                Flavour::Sqlite => format!("{} values for {} columns", exprs.len(), targets.len()),
                Flavour::InnoDb => format!(
                    "(1136, \"Column count doesn't match value count at row {}\")",
                    n + 1
                ),
            }));
        }
        let vals = new_row(ctx, table, &targets, exprs)?;
        check_row(ctx, &schema, &vals)?;
        check_unique(ctx, t, table, conn, &vals, None)?;
        check_insert_intention(ctx, t, table, conn, &vals, None)?;
        let id = table.next_row_id;
        table.next_row_id += 1;
        let vals: Vals = vals.into();
        wrote(ctx, t, &vals);
        table.rows.push(Row {
            id,
            committed: None,
            committed_at: 0,
            older: Vec::new(),
            lock: Some(Lock {
                conn,
                write: Write::Put(vals),
            }),
            no_key: false,
            sharers: Vec::new(),
            key_sharers: Vec::new(),
        });
    }
    Ok(Value::Int(i64::try_from(i.rows.len()).unwrap_or(i64::MAX)))
}

fn target_columns(
    ctx: &Ctx<'_>,
    schema: &Schema,
    columns: Option<&[String]>,
) -> Result<Vec<usize>, Stop> {
    let Some(columns) = columns else {
        return Ok((0..schema.columns.len()).collect());
    };
    let mut targets = Vec::new();
    for c in columns {
        let i = schema.column(c).ok_or_else(|| ctx.no_column(c))?;
        if targets.contains(&i) {
            return Err(programming(format!(
                "column \"{c}\" specified more than once"
            )));
        }
        targets.push(i);
    }
    Ok(targets)
}

/// The values of a new row: the given ones, then defaults, and the auto-increment counter for
/// the auto column when it was left out (or, in MySQL, given as NULL or 0).
fn new_row(
    ctx: &Ctx<'_>,
    table: &mut Table,
    targets: &[usize],
    exprs: &[Expr],
) -> Result<Vec<Value>, Stop> {
    let schema = Arc::clone(&table.schema);
    let mut vals: Vec<Value> = schema
        .columns
        .iter()
        .map(|c| c.default.clone().unwrap_or(Value::None))
        .collect();
    let mut given: BTreeMap<usize, Value> = BTreeMap::new();
    for (&col, e) in targets.iter().zip(exprs) {
        let v = e
            .eval(&Scope {
                params: ctx.params,
                row: None,
            })
            .map_err(programming)?;
        let ty = schema.columns.get(col).map_or(Ty::Text(None), |c| c.ty);
        given.insert(col, coerce(ty, v).map_err(programming)?);
    }
    for (col, v) in &given {
        if let Some(slot) = vals.get_mut(*col) {
            *slot = v.clone();
        }
    }
    if let Some(auto) = schema.auto {
        let generate = match given.get(&auto) {
            None => true,
            Some(Value::Int(0)) => ctx.innodb(),
            Some(Value::None) => ctx.flavour != Flavour::Postgres,
            Some(_) => false,
        };
        if generate {
            if let Some(slot) = vals.get_mut(auto) {
                *slot = Value::Int(table.auto_next);
            }
            table.auto_next = table.auto_next.saturating_add(1);
        } else if let (false, Some(Value::Int(n))) =
            (ctx.flavour == Flavour::Postgres, given.get(&auto))
        {
            // InnoDB moves its counter past an explicit value, and SQLite's next rowid is the
            // largest one plus one; a PostgreSQL sequence does not move.
            table.auto_next = table.auto_next.max(n.saturating_add(1));
        }
    }
    Ok(vals)
}

/// NOT NULL and VARCHAR(n) length.
fn check_row(ctx: &Ctx<'_>, schema: &Schema, vals: &[Value]) -> Result<(), Stop> {
    for (col, v) in schema.columns.iter().zip(vals) {
        if col.not_null && *v == Value::None {
            return Err(Stop::Failed(
                Errno::IntegrityError,
                match ctx.flavour {
                    Flavour::Postgres => format!("null value in column \"{}\" of relation \"{}\" violates not-null constraint", col.name, schema.name),
                    Flavour::InnoDb => format!("(1048, \"Column '{}' cannot be null\")", col.name),
                    Flavour::Sqlite => format!("NOT NULL constraint failed: {}.{}", schema.name, col.name),
                },
            ));
        }
        // SQLite keeps VARCHAR(n) as a type name and never checks the length.
        if let (Ty::Text(Some(max)), Value::Str(s), false) =
            (col.ty, v, ctx.flavour == Flavour::Sqlite)
        {
            if u64::try_from(s.chars().count()).unwrap_or(u64::MAX) > max {
                return Err(programming(match ctx.flavour {
                    Flavour::Postgres => {
                        format!("value too long for type character varying({max})")
                    }
                    // (SQLite never checks the length: see above.)
                    Flavour::InnoDb | Flavour::Sqlite => format!(
                        "(1406, \"Data too long for column '{}' at row 1\")",
                        col.name
                    ),
                }));
            }
        }
    }
    Ok(())
}

/// Unique and primary keys. A row this transaction can see with the same key is a violation; a
/// row another transaction holds whose old or new version has the key makes both databases
/// wait for that transaction (its outcome decides between a violation and success).
fn check_unique(
    ctx: &Ctx<'_>,
    t: usize,
    table: &Table,
    conn: usize,
    vals: &[Value],
    skip: Option<usize>,
) -> Result<(), Stop> {
    let schema = &table.schema;
    let mut wait = None;
    for key in &schema.keys {
        let Some(k) = schema.key_of(key, vals) else {
            continue;
        };
        let has_key = |v: &Vals| schema.key_of(key, v).as_ref() == Some(&k);
        let others = table
            .rows
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .map(|(_, row)| row);
        for row in others {
            match row.locked_by_other(Some(conn)) {
                Some(other) if wait.is_none() && row.versions().any(has_key) => {
                    let holder = row
                        .latest()
                        .or(row.committed.as_ref())
                        .map_or(&[][..], |v| v);
                    let lock = format!(
                        "row {} holding key {} of {}",
                        schema.describe_row(holder),
                        schema.describe_key(key, &k),
                        ctx.key_name(key)
                    );
                    wait = Some(Wait {
                        on: vec![other],
                        lock,
                        what: LockRef::Row {
                            table: t,
                            row: row.id,
                        },
                    });
                }
                Some(_) => {}
                None if row.visible(Some(conn)).is_some_and(has_key) => {
                    // SSI: PostgreSQL checks for a rw-conflict on the index entry before
                    // reporting the violation, so a serialization failure wins over it.
                    if let Some(v) = row.visible(Some(conn)) {
                        wrote(ctx, t, v);
                    }
                    return Err(ctx.duplicate(schema, key, &k));
                }
                None => {}
            }
        }
    }
    wait.map_or(Ok(()), |w| Err(Stop::Blocked(w)))
}

/// InnoDB: a new index entry must wait while another transaction holds a gap lock on the gap
/// it goes into (the insert intention lock conflicts with gap locks). An update that keeps a
/// key inserts no new entry for it.
fn check_insert_intention(
    ctx: &Ctx<'_>,
    t: usize,
    table: &Table,
    conn: usize,
    vals: &[Value],
    old: Option<&[Value]>,
) -> Result<(), Stop> {
    if !ctx.innodb() {
        return Ok(());
    }
    let schema = &table.schema;
    for (ki, key) in schema.keys.iter().enumerate() {
        let Some(at) = schema.key_of(key, vals) else {
            continue;
        };
        if old.is_some_and(|o| schema.key_of(key, o).as_ref() == Some(&at)) {
            continue;
        }
        let gaps: Vec<&GapLock> = table
            .gaps
            .iter()
            .filter(|g| g.conn != conn && g.covers(ki, &at))
            .collect();
        let Some(first) = gaps.first() else { continue };
        let mut on: Vec<usize> = gaps.iter().map(|g| g.conn).collect();
        on.sort_unstable();
        on.dedup();
        return Err(Stop::Blocked(Wait {
            on,
            lock: table.describe_gap(first),
            what: LockRef::Gap {
                table: t,
                key: ki,
                at,
            },
        }));
    }
    Ok(())
}

/// InnoDB: a locking statement whose WHERE looks up one key of a unique index that is not there
/// locks the gap where it would be (REPEATABLE READ behaviour; see the module docs).
fn gap_lock_if_absent(ctx: &Ctx<'_>, table: &mut Arc<Table>, conn: usize, filter: Option<&Expr>) {
    if !ctx.gap_locks {
        return;
    }
    let Some((ki, at)) = unique_lookup(ctx, &table.schema, filter) else {
        return;
    };
    let Some(key) = table.schema.keys.get(ki) else {
        return;
    };
    if table
        .rows
        .iter()
        .flat_map(|r| r.versions())
        .any(|v| table.schema.key_of(key, v).as_ref() == Some(&at))
    {
        return;
    }
    let (lo, hi) = table.gap_around(ki, &at);
    let gap = GapLock {
        conn,
        key: ki,
        lo,
        hi,
    };
    if !table.gaps.contains(&gap) {
        Arc::make_mut(table).gaps.push(gap);
    }
}

/// The unique index (primary key first) whose every column the WHERE fixes with `col = constant`,
/// and the key it looks up.
fn unique_lookup(
    ctx: &Ctx<'_>,
    schema: &Schema,
    filter: Option<&Expr>,
) -> Option<(usize, Vec<Value>)> {
    let mut fixed: BTreeMap<usize, Value> = BTreeMap::new();
    for c in filter?.conjuncts() {
        let Expr::Cmp(CmpOp::Eq, a, b) = c else {
            continue;
        };
        let (col, e) = match (a.as_ref(), b.as_ref()) {
            (Expr::Col(col), e) | (e, Expr::Col(col)) if e.is_constant() => (col, e),
            _ => continue,
        };
        let Some(i) = schema.column(col) else {
            continue;
        };
        let ty = schema.columns.get(i).map_or(Ty::Text(None), |c| c.ty);
        let Ok(v) = e
            .eval(&Scope {
                params: ctx.params,
                row: None,
            })
            .and_then(|v| coerce(ty, v))
        else {
            continue;
        };
        fixed.insert(i, v);
    }
    schema.keys.iter().enumerate().find_map(|(ki, key)| {
        let at: Option<Vec<Value>> = key
            .cols
            .iter()
            .map(|c| fixed.get(c).filter(|v| **v != Value::None).cloned())
            .collect();
        at.map(|at| (ki, at))
    })
}
