//! Named locks (mutex, reentrant, rwlock), and the lock-order graph that finds potential deadlocks.
//!
//! Acquiring is an attempt: it either succeeds or says who holds the lock, and the interpreter
//! blocks the actor until a release. The lock-order graph records, for every acquisition made
//! while other locks were held, the edge `held -> acquired` with the locks held besides (the
//! "gate" locks). A cycle whose edges come from different actors and share no gate lock is a
//! deadlock some other schedule can reach; a gate lock (the seed's "lock C") rules it out.

use racelab_lang::ir::{LockKind, LockMode};

/// The state of one lock.
#[derive(Debug, Clone, Default, Hash)]
pub struct LockState {
    /// The exclusive holder and how many times it holds the lock (reentrant locks count).
    pub owner: Option<(usize, u32)>,
    /// Actors holding a shared (read) lock on an rwlock.
    pub readers: Vec<usize>,
}

impl LockState {
    /// The actors holding the lock in any mode.
    pub fn holders(&self) -> Vec<usize> {
        let mut h: Vec<usize> = self.owner.iter().map(|(a, _)| *a).collect();
        h.extend(self.readers.iter().copied());
        h
    }

    pub fn is_held_by(&self, actor: usize) -> bool {
        self.owner.is_some_and(|(a, _)| a == actor) || self.readers.contains(&actor)
    }

    /// Tries to take the lock; on failure returns the holders the actor would wait for.
    /// `Ok(true)` when this acquisition is the actor's first hold (not a reentrant one).
    pub fn try_acquire(
        &mut self,
        kind: LockKind,
        mode: LockMode,
        actor: usize,
    ) -> Result<bool, Vec<usize>> {
        match (mode, self.owner) {
            (LockMode::Exclusive, None) if self.readers.is_empty() => {
                self.owner = Some((actor, 1));
                Ok(true)
            }
            (LockMode::Exclusive, Some((a, n))) if a == actor && kind == LockKind::Reentrant => {
                self.owner = Some((a, n + 1));
                Ok(false)
            }
            (LockMode::Shared, None) => {
                let first = !self.readers.contains(&actor);
                self.readers.push(actor);
                Ok(first)
            }
            // A mutex acquired twice by its owner waits for itself: Python's threading.Lock does.
            _ => Err(self.holders()),
        }
    }

    /// Releases one hold of `actor`. `Ok(true)` when the lock became free for waiters.
    pub fn release(&mut self, actor: usize) -> Result<bool, &'static str> {
        if let Some((a, n)) = self.owner {
            if a == actor {
                self.owner = (n > 1).then(|| (a, n - 1));
                return Ok(self.owner.is_none());
            }
        }
        if let Some(i) = self.readers.iter().position(|r| *r == actor) {
            self.readers.remove(i);
            return Ok(self.readers.is_empty());
        }
        Err("release of a lock this actor does not hold (RuntimeError: release unlocked lock)")
    }

    /// Drops every hold of `actor` (it died or exited). True when the lock became free.
    pub fn release_all(&mut self, actor: usize) -> bool {
        let before = self.owner.is_some() || !self.readers.is_empty();
        if self.owner.is_some_and(|(a, _)| a == actor) {
            self.owner = None;
        }
        self.readers.retain(|r| *r != actor);
        before && self.owner.is_none() && self.readers.is_empty()
    }
}

/// One observed acquisition order: `actor` took `to` while holding `from` (and `gates`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderEdge {
    pub from: u32,
    pub to: u32,
    pub actor: usize,
    pub gates: Vec<u32>,
}

/// The lock-order graph of one execution.
#[derive(Debug, Clone, Default, Hash)]
pub struct LockOrder {
    edges: Vec<OrderEdge>,
}

impl LockOrder {
    /// Records that `actor` acquired `to` while holding `held` (in acquisition order).
    pub fn acquired(&mut self, actor: usize, to: u32, held: &[u32]) {
        for &from in held.iter().filter(|&&h| h != to) {
            let gates: Vec<u32> = held
                .iter()
                .copied()
                .filter(|&g| g != from && g != to)
                .collect();
            let edge = OrderEdge {
                from,
                to,
                actor,
                gates,
            };
            if !self.edges.contains(&edge) {
                self.edges.push(edge);
            }
        }
    }

    /// A cycle of edges from pairwise different actors with pairwise disjoint gates, if any
    /// (cycles of up to four locks: enough for every scenario, and cheap).
    pub fn potential_deadlock(&self) -> Option<Vec<OrderEdge>> {
        let mut path = Vec::new();
        for (i, e) in self.edges.iter().enumerate() {
            path.push(i);
            if let Some(c) = self.extend(e.from, &mut path) {
                return Some(c);
            }
            path.pop();
        }
        None
    }

    fn extend(&self, start: u32, path: &mut Vec<usize>) -> Option<Vec<OrderEdge>> {
        let last = &self.edges[*path.last()?];
        if last.to == start && path.len() >= 2 {
            return Some(path.iter().map(|&i| self.edges[i].clone()).collect());
        }
        if path.len() >= 4 {
            return None;
        }
        for (i, e) in self.edges.iter().enumerate() {
            let compatible = e.from == last.to
                && path.iter().all(|&p| {
                    let q = &self.edges[p];
                    q.actor != e.actor
                        && q.from != e.from
                        && !q.gates.iter().any(|g| e.gates.contains(g))
                });
            if compatible {
                path.push(i);
                if let Some(c) = self.extend(start, path) {
                    return Some(c);
                }
                path.pop();
            }
        }
        None
    }
}
