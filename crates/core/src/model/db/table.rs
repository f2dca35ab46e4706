//! Tables: schema, rows with their committed and uncommitted versions, and InnoDB gap locks.
//!
//! Every write takes an exclusive row lock held to the end of the transaction, so at most one
//! transaction has an uncommitted version of a row; a row therefore needs its committed version
//! and, while it is locked, the lock holder's pending write. That is all READ COMMITTED needs:
//! others see the committed version, the holder sees its own write. Snapshots (REPEATABLE READ,
//! SERIALIZABLE) also need the versions they saw: while a snapshot is open, each commit stamps
//! the row with the database's commit clock and keeps the version it replaced in `older`.

use std::fmt::Write as _;
use std::sync::Arc;

use racelab_lang::ir::sql::{Schema, Strength};
use racelab_lang::ir::Value;

/// Row values, shared between versions and clones of the database.
pub(super) type Vals = Arc<[Value]>;

/// What the transaction holding a row's lock has done to it so far.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Write {
    /// Locked (SELECT ... FOR UPDATE, or an UPDATE that matched) but not changed.
    Locked,
    /// Inserted or updated: the new version.
    Put(Vals),
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Lock {
    pub conn: usize,
    pub write: Write,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Row {
    /// Stable identity (insertion order), so a waiter can name the row it waits for.
    pub id: u64,
    /// `None` while the row is an uncommitted insert, and once its deletion is committed (the row
    /// then stays only while an open snapshot still sees an older version).
    pub committed: Option<Vals>,
    /// The commit clock when `committed` became the committed version (0 when no snapshot was
    /// open then: every snapshot taken since sees it).
    pub committed_at: u64,
    /// Earlier committed versions an open snapshot may still see: (committed at, version),
    /// oldest first. `None` is "deleted".
    pub older: Vec<(u64, Option<Vals>)>,
    pub lock: Option<Lock>,
    /// The `lock` holder holds only PostgreSQL's FOR NO KEY UPDATE strength (a non-key UPDATE,
    /// or SELECT ... FOR NO KEY UPDATE), which FOR KEY SHARE lockers do not wait for.
    pub no_key: bool,
    /// Connections holding a shared lock (SELECT ... FOR SHARE), besides any exclusive `lock`:
    /// they block exclusive lockers and writers, not each other.
    pub sharers: Vec<usize>,
    /// Connections holding PostgreSQL's FOR KEY SHARE lock: only FOR UPDATE strength (DELETE,
    /// a key-changing UPDATE, SELECT ... FOR UPDATE) waits for them.
    pub key_sharers: Vec<usize>,
}

impl Row {
    /// The version `viewer` sees under READ COMMITTED: its own write if it holds the lock, else
    /// the committed version. `None` as viewer sees committed data only.
    pub fn visible(&self, viewer: Option<usize>) -> Option<&Vals> {
        match &self.lock {
            Some(lock) if Some(lock.conn) == viewer => match &lock.write {
                Write::Locked => self.committed.as_ref(),
                Write::Put(v) => Some(v),
                Write::Deleted => None,
            },
            _ => self.committed.as_ref(),
        }
    }

    /// The version `viewer` sees: its own write if it holds the lock, else the committed version
    /// a snapshot taken at `snapshot` saw (or the latest committed one, without a snapshot).
    pub fn visible_at(&self, viewer: Option<usize>, snapshot: Option<u64>) -> Option<&Vals> {
        match (&self.lock, snapshot) {
            (Some(lock), _) if Some(lock.conn) == viewer && lock.write != Write::Locked => {
                self.visible(viewer)
            }
            (_, Some(at)) => self.version_at(at),
            _ => self.committed.as_ref(),
        }
    }

    /// The committed version a snapshot taken at clock `at` sees.
    pub fn version_at(&self, at: u64) -> Option<&Vals> {
        if self.committed_at <= at {
            return self.committed.as_ref();
        }
        self.older
            .iter()
            .rev()
            .find(|(ts, _)| *ts <= at)
            .and_then(|(_, v)| v.as_ref())
    }

    /// The newest version, committed or not: what InnoDB's locking reads look at.
    pub fn latest(&self) -> Option<&Vals> {
        match &self.lock {
            Some(Lock {
                write: Write::Put(v),
                ..
            }) => Some(v),
            Some(Lock {
                write: Write::Deleted,
                ..
            }) => None,
            _ => self.committed.as_ref(),
        }
    }

    /// Both versions: an index holds entries for each until the transaction ends.
    pub fn versions(&self) -> impl Iterator<Item = &Vals> {
        let pending = match &self.lock {
            Some(Lock {
                write: Write::Put(v),
                ..
            }) => Some(v),
            _ => None,
        };
        self.committed.iter().chain(pending)
    }

    /// The other connections whose locks on this row a lock request of strength `want` by
    /// `conn` must wait for (see [`Strength`]).
    pub fn conflicts(&self, conn: Option<usize>, want: Strength) -> Vec<usize> {
        let mut on: Vec<usize> = self
            .lock
            .as_ref()
            .filter(|_| !(want == Strength::KeyShare && self.no_key))
            .map(|l| l.conn)
            .into_iter()
            .collect();
        if matches!(want, Strength::NoKeyUpdate | Strength::Update) {
            on.extend(&self.sharers);
        }
        if want == Strength::Update {
            on.extend(&self.key_sharers);
        }
        on.retain(|&c| Some(c) != conn);
        on.sort_unstable();
        on.dedup();
        on
    }

    /// The connection holding this row's lock, if it is not `conn`.
    pub fn locked_by_other(&self, conn: Option<usize>) -> Option<usize> {
        self.lock
            .as_ref()
            .map(|l| l.conn)
            .filter(|&c| Some(c) != conn)
    }
}

/// An InnoDB gap lock on the open interval `(lo, hi)` of one unique index (`hi = None` is the
/// gap before the supremum). The interval is fixed when the lock is taken: when InnoDB splits a
/// locked gap by an insert, both halves inherit the lock, so the union stays the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct GapLock {
    pub conn: usize,
    pub key: usize,
    pub lo: Option<Vec<Value>>,
    pub hi: Option<Vec<Value>>,
}

impl GapLock {
    pub fn covers(&self, key: usize, at: &[Value]) -> bool {
        self.key == key
            && self.lo.as_ref().is_none_or(|lo| lo.as_slice() < at)
            && self.hi.as_ref().is_none_or(|hi| at < hi.as_slice())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Table {
    pub schema: Arc<Schema>,
    /// In insertion order (PostgreSQL's heap order, near enough).
    pub rows: Vec<Row>,
    pub next_row_id: u64,
    /// The next value of the auto-increment counter or sequence. Not transactional, as in both
    /// databases: a rolled-back or failed INSERT does not give its numbers back.
    pub auto_next: i64,
    pub gaps: Vec<GapLock>,
}

impl Table {
    pub fn new(schema: Schema) -> Table {
        Table {
            schema: Arc::new(schema),
            rows: Vec::new(),
            next_row_id: 1,
            auto_next: 1,
            gaps: Vec::new(),
        }
    }

    /// Whether `conn` holds any row or gap lock here (so commit and rollback can skip the table).
    pub fn touched_by(&self, conn: usize) -> bool {
        self.rows.iter().any(|r| {
            r.lock.as_ref().is_some_and(|l| l.conn == conn)
                || r.sharers.contains(&conn)
                || r.key_sharers.contains(&conn)
        }) || self.gaps.iter().any(|g| g.conn == conn)
    }

    /// Ends `conn`'s transaction here: its writes become committed at clock `at` (keeping the
    /// versions they replace when `keep_history`: a snapshot is open), or vanish; its locks go.
    pub fn finish(&mut self, conn: usize, commit: bool, at: u64, keep_history: bool) {
        for row in &mut self.rows {
            row.sharers.retain(|&c| c != conn);
            row.key_sharers.retain(|&c| c != conn);
            let Some(lock) = row.lock.take_if(|l| l.conn == conn) else {
                continue;
            };
            row.no_key = false;
            let new = match lock.write {
                Write::Put(v) if commit => Some(v),
                Write::Deleted if commit => None,
                _ => continue,
            };
            let old = std::mem::replace(&mut row.committed, new);
            if keep_history && (old.is_some() || row.committed_at > 0 || !row.older.is_empty()) {
                row.older.push((row.committed_at, old));
            }
            row.committed_at = at;
        }
        self.rows
            .retain(|r| r.committed.is_some() || r.lock.is_some() || !r.older.is_empty());
        self.gaps.retain(|g| g.conn != conn);
    }

    /// Forgets the versions no snapshot taken at `oldest` or later can see; with no snapshot
    /// open (`None`), every old version and every commit stamp.
    pub fn prune(&mut self, oldest: Option<u64>) {
        for row in &mut self.rows {
            match oldest {
                None => {
                    row.older.clear();
                    row.committed_at = 0;
                }
                Some(at) => {
                    let successors: Vec<u64> = row
                        .older
                        .iter()
                        .skip(1)
                        .map(|(ts, _)| *ts)
                        .chain([row.committed_at])
                        .collect();
                    let mut next = successors.into_iter();
                    row.older
                        .retain(|_| next.next().is_some_and(|succ| succ > at));
                }
            }
        }
        self.rows
            .retain(|r| r.committed.is_some() || r.lock.is_some() || !r.older.is_empty());
    }

    /// Whether [`Table::prune`] with no snapshot open would change anything.
    pub fn has_history(&self) -> bool {
        self.rows
            .iter()
            .any(|r| r.committed_at > 0 || !r.older.is_empty())
    }

    /// The neighbours of `at` among every entry of index `key` (all versions of all rows), which
    /// bound the gap `at` falls into.
    pub fn gap_around(&self, key: usize, at: &[Value]) -> (Option<Vec<Value>>, Option<Vec<Value>>) {
        let Some(k) = self.schema.keys.get(key) else {
            return (None, None);
        };
        let entries = self
            .rows
            .iter()
            .flat_map(|r| r.versions())
            .filter_map(|v| self.schema.key_of(k, v));
        let (mut lo, mut hi): (Option<Vec<Value>>, Option<Vec<Value>>) = (None, None);
        for e in entries {
            if e.as_slice() < at && lo.as_ref().is_none_or(|l| *l < e) {
                lo = Some(e);
            } else if e.as_slice() > at && hi.as_ref().is_none_or(|h| e < *h) {
                hi = Some(e);
            }
        }
        (lo, hi)
    }

    /// `gap before supremum in patch (next-key lock)` / `gap before patch(id=3) (gap lock)`.
    pub fn describe_gap(&self, gap: &GapLock) -> String {
        let Some(key) = self.schema.keys.get(gap.key) else {
            return format!("gap in {}", self.schema.name);
        };
        let mut s = String::from("gap before ");
        match &gap.hi {
            None => {
                let _ = write!(s, "supremum in {}", self.schema.name);
            }
            Some(hi) => {
                let _ = write!(
                    s,
                    "{}({})",
                    self.schema.name,
                    self.schema.describe_key(key, hi)
                );
            }
        }
        if !key.primary {
            let _ = write!(s, " index {}", key.my_name);
        }
        s.push_str(if gap.hi.is_none() {
            " (next-key lock)"
        } else {
            " (gap lock)"
        });
        s
    }
}
