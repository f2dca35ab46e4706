//! PostgreSQL's Serializable Snapshot Isolation for SERIALIZABLE transactions: rw-antidependency
//! bookkeeping and the dangerous-structure rule, after src/backend/storage/lmgr/predicate.c.
//!
//! A rw-antidependency `R -rw-> W` means R read a version that W's write replaced or would
//! have matched, and R did not see W's write. PostgreSQL fails a transaction when a dangerous
//! structure `T1 -rw-> T2 -rw-> T3` appears whose T3 committed first (T1 may be T3): on adding
//! an edge (`on_conflict`, as OnConflict_CheckForSerializationFailure) and at commit
//! (`pre_commit`, as PreCommit_CheckForSerializationFailure). The victim is the transaction
//! running the statement when it is the writer or the writer has committed; otherwise the
//! writer is doomed and fails at its next statement or COMMIT.
//!
//! Reads are recorded as exact predicates (table, WHERE, parameters), where PostgreSQL keeps
//! SIREAD locks on tuples, index pages or whole relations: PostgreSQL finds every conflict the
//! model finds, and may find more (see docs/language.md, "Isolation levels").

use std::collections::BTreeSet;

use super::exec::{PredRead, Stop, Trail, Writer};
use super::table::Table;
use super::Db;
use racelab_lang::ir::Errno;
use std::sync::Arc;

/// SQLSTATE 40001 as PostgreSQL words it for SSI failures.
pub(super) const SSI_FAILURE: &str =
    "could not serialize access due to read/write dependencies among transactions";

/// A SERIALIZABLE transaction, from its snapshot until no open transaction overlaps it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Sxact {
    pub id: u64,
    pub conn: usize,
    pub snapshot: u64,
    /// The commit clock it committed at.
    pub commit: Option<u64>,
    /// Chosen as a victim while another transaction ran: fails at its next statement.
    pub doomed: bool,
    pub reads: Vec<PredRead>,
    /// Transactions with a rw-antidependency to this one (they read what it wrote).
    pub ins: BTreeSet<u64>,
    /// Transactions this one has a rw-antidependency to (it read past their writes).
    pub outs: BTreeSet<u64>,
}

fn failure() -> Stop {
    Stop::Failed(Errno::OperationalError, SSI_FAILURE.to_string())
}

impl Db {
    fn sxact(&self, id: u64) -> Option<&Sxact> {
        self.sxacts.iter().find(|x| x.id == id)
    }

    /// The open SERIALIZABLE transaction of `conn`.
    pub(super) fn active_sxact(&self, conn: usize) -> Option<&Sxact> {
        self.sxacts
            .iter()
            .find(|x| x.conn == conn && x.commit.is_none())
    }

    pub(super) fn start_sxact(&mut self, conn: usize, snapshot: u64) {
        let id = self.next_sxact;
        self.next_sxact += 1;
        self.sxacts.push(Sxact {
            id,
            conn,
            snapshot,
            commit: None,
            doomed: false,
            reads: Vec::new(),
            ins: BTreeSet::new(),
            outs: BTreeSet::new(),
        });
    }

    /// After a SERIALIZABLE statement finished: keeps its reads and adds the rw-antidependencies
    /// it made; a dangerous structure fails it (40001) or dooms another transaction.
    pub(super) fn record_ssi(
        &mut self,
        conn: usize,
        tables: &[Arc<Table>],
        trail: Trail,
    ) -> Result<(), Stop> {
        let Some(me) = self.active_sxact(conn).map(|x| x.id) else {
            return Ok(());
        };
        if let Some(x) = self.sxacts.iter_mut().find(|x| x.id == me) {
            for read in trail.reads {
                if !x.reads.contains(&read) {
                    x.reads.push(read);
                }
            }
        }
        for writer in trail.read_past {
            let w = match writer {
                Writer::Committed(at) => self
                    .sxacts
                    .iter()
                    .find(|x| x.commit == Some(at))
                    .map(|x| x.id),
                Writer::Active(c) => self.active_sxact(c).map(|x| x.id),
            };
            if let Some(w) = w {
                self.on_conflict(me, w, me)?;
            }
        }
        self.conflict_in(conn, tables, &trail.writes)
    }

    /// Earlier reads of other SERIALIZABLE transactions that the row versions `conn` wrote
    /// match: a rw-antidependency from each of them to `conn`.
    pub(super) fn conflict_in(
        &mut self,
        conn: usize,
        tables: &[Arc<Table>],
        writes: &[(usize, super::table::Vals)],
    ) -> Result<(), Stop> {
        let Some((me, my_snapshot)) = self.active_sxact(conn).map(|x| (x.id, x.snapshot)) else {
            return Ok(());
        };
        let mut readers = BTreeSet::new();
        for x in self
            .sxacts
            .iter()
            .filter(|x| x.id != me && x.commit.is_none_or(|c| c > my_snapshot))
        {
            let hit = writes.iter().any(|(t, vals)| {
                let Some(table) = tables.get(*t) else {
                    return false;
                };
                x.reads
                    .iter()
                    .any(|r| r.table == *t && r.covers(&table.schema, vals))
            });
            if hit {
                readers.insert(x.id);
            }
        }
        for r in readers {
            self.on_conflict(r, me, me)?;
        }
        Ok(())
    }

    /// Adds `reader -rw-> writer` and applies PostgreSQL's dangerous-structure rule; `current`
    /// is the transaction running the statement.
    fn on_conflict(&mut self, reader: u64, writer: u64, current: u64) -> Result<(), Stop> {
        if reader == writer {
            return Ok(());
        }
        self.sxacts
            .iter_mut()
            .filter(|x| x.id == reader)
            .for_each(|x| {
                x.outs.insert(writer);
            });
        self.sxacts
            .iter_mut()
            .filter(|x| x.id == writer)
            .for_each(|x| {
                x.ins.insert(reader);
            });
        let (Some(r), Some(w)) = (self.sxact(reader), self.sxact(writer)) else {
            return Ok(());
        };
        // reader -> writer -> t3, t3 committed first.
        let pivot_writer = w
            .outs
            .iter()
            .filter_map(|&t3| self.sxact(t3)?.commit)
            .any(|c3| w.commit.is_none_or(|cw| c3 <= cw) && r.commit.is_none_or(|cr| c3 <= cr));
        // t0 -> reader -> writer, writer committed first.
        let pivot_reader = w.commit.is_some_and(|cw| {
            r.ins
                .iter()
                .filter_map(|&t0| self.sxact(t0))
                .any(|t0| !t0.doomed && t0.commit.is_none_or(|c0| cw <= c0))
        });
        if !(pivot_writer || pivot_reader) {
            return Ok(());
        }
        if current == writer || w.commit.is_some() {
            return Err(failure());
        }
        self.sxacts
            .iter_mut()
            .filter(|x| x.id == writer)
            .for_each(|x| x.doomed = true);
        Ok(())
    }

    /// Before `conn`'s SERIALIZABLE transaction commits: fails it if it was doomed; dooms each
    /// open transaction that reads past it and is itself read past by an open one (or by it).
    pub(super) fn pre_commit(&mut self, conn: usize) -> Result<(), String> {
        let Some(me) = self.active_sxact(conn) else {
            return Ok(());
        };
        if me.doomed {
            return Err(SSI_FAILURE.to_string());
        }
        let my_id = me.id;
        let open = |x: &Sxact| x.commit.is_none() && !x.doomed;
        let doom: Vec<u64> = me
            .ins
            .iter()
            .filter_map(|&near| self.sxact(near))
            .filter(|near| {
                open(near)
                    && near
                        .ins
                        .iter()
                        .any(|&far| far == my_id || self.sxact(far).is_some_and(open))
            })
            .map(|near| near.id)
            .collect();
        self.sxacts
            .iter_mut()
            .filter(|x| doom.contains(&x.id))
            .for_each(|x| x.doomed = true);
        Ok(())
    }

    /// `conn`'s transaction ended: a committed one is kept (stamped `at`) while open ones
    /// overlap it; an aborted one goes with its edges.
    pub(super) fn end_sxact(&mut self, conn: usize, commit: bool, at: u64) {
        let Some(i) = self
            .sxacts
            .iter()
            .position(|x| x.conn == conn && x.commit.is_none())
        else {
            return;
        };
        if commit {
            if let Some(x) = self.sxacts.get_mut(i) {
                x.commit = Some(at);
            }
        } else {
            let id = self.sxacts.remove(i).id;
            self.forget_sxacts(&[id]);
        }
    }

    /// Drops committed transactions no open SERIALIZABLE transaction overlaps.
    pub(super) fn prune_sxacts(&mut self) {
        let open: Vec<u64> = self
            .sxacts
            .iter()
            .filter(|x| x.commit.is_none())
            .map(|x| x.snapshot)
            .collect();
        let gone: Vec<u64> = self
            .sxacts
            .iter()
            .filter(|x| x.commit.is_some_and(|c| !open.iter().any(|&s| s < c)))
            .map(|x| x.id)
            .collect();
        if gone.is_empty() {
            return;
        }
        self.sxacts.retain(|x| !gone.contains(&x.id));
        self.forget_sxacts(&gone);
    }

    fn forget_sxacts(&mut self, ids: &[u64]) {
        for x in &mut self.sxacts {
            x.ins.retain(|i| !ids.contains(i));
            x.outs.retain(|i| !ids.contains(i));
        }
        if self.sxacts.is_empty() {
            self.next_sxact = 0;
        }
    }
}
