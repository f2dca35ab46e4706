//! UPDATE, DELETE and INSERT: new row versions, defaults, NOT NULL/length checks, unique keys,
//! and InnoDB's gap and insert-intention locks.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::super::table::{GapLock, Lock, Row, Table, Vals, Write};
use super::scan::{check_not_stale, first_conflict, scan, write_row, wrote};
use super::{programming, Ctx, LockRef, Stop, Wait};
use racelab_lang::ir::sql::{CmpOp, Delete, Expr, Flavour, Insert, Schema, Strength, Ty, Update};
use racelab_lang::ir::{Errno, Value};
use racelab_lang::sql::expr::{coerce, Scope};

pub(in super::super) fn update(
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

pub(in super::super) fn delete(
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

pub(in super::super) fn insert(
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
pub(super) fn gap_lock_if_absent(
    ctx: &Ctx<'_>,
    table: &mut Arc<Table>,
    conn: usize,
    filter: Option<&Expr>,
) {
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
