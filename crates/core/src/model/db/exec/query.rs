//! SELECT: scanning, locking (FOR UPDATE/SHARE, NOWAIT), ORDER BY, LIMIT and projection.

use std::cmp::Ordering;
use std::sync::Arc;

use super::super::table::Table;
use super::scan::{check_not_stale, first_conflict, lock_row, scan, share_row};
use super::write::gap_lock_if_absent;
use super::{programming, Ctx, Hit, Stop};
use racelab_lang::ir::sql::{Expr, Flavour, LockMode, Projection, Schema, Select, Strength};
use racelab_lang::ir::{Errno, Value};
use racelab_lang::sql::expr::{order, Scope};

pub(in super::super) fn select(
    ctx: &Ctx<'_>,
    tables: &mut [Arc<Table>],
    s: &Select,
) -> Result<Value, Stop> {
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
