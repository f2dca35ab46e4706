//! Finding the rows a statement applies to, and taking or checking their locks (including
//! the SSI bookkeeping of what a SERIALIZABLE read saw and wrote).

use super::super::table::{Lock, Row, Table, Vals, Write};
use super::{Ctx, Hit, LockRef, PredRead, Stop, Wait, Writer};
use racelab_lang::ir::sql::{Expr, Flavour, Schema, Strength};
use racelab_lang::ir::Errno;

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
pub(super) fn scan(
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
pub(super) fn read_past(
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
pub(super) fn wrote(ctx: &Ctx<'_>, t: usize, vals: &Vals) {
    if let Some(trail) = &ctx.ssi {
        trail.borrow_mut().writes.push((t, vals.clone()));
    }
}

/// PostgreSQL REPEATABLE READ/SERIALIZABLE: UPDATE, DELETE or SELECT ... FOR UPDATE of a row
/// that a transaction committed after the snapshot changed.
pub(super) fn check_not_stale(ctx: &Ctx<'_>, table: &Table, hits: &[Hit]) -> Result<(), Stop> {
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
pub(super) fn first_conflict(table_idx: usize, table: &Table, hits: &[Hit]) -> Option<Wait> {
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
pub(super) fn lock_row(table: &mut Table, idx: usize, conn: usize, want: Strength) {
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
pub(super) fn share_row(table: &mut Table, idx: usize, conn: usize, want: Strength) {
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

pub(super) fn write_row(table: &mut Table, idx: usize, conn: usize, write: Write, want: Strength) {
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
