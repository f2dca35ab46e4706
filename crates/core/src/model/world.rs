//! The world a machine runs against, as capabilities: files (every world), signals and SQL (a world has them, or leaves them to the model).
//!
//! One machine runs every world: the model's ([`super::fs::ModelFs`]), a real directory stepped
//! by worker processes or threads, a real database server beside the model's files. A world
//! implements [`World`] for its files, and [`Signals`] and [`Sql`] for what else it makes real;
//! their defaults say "not here", so the machine keeps its own model of that part.
//!
//! Architecture invariant: these traits are the only door between the core and anything real;
//! the core never imports a real backend.

use crate::model::db::{Outcome, Prepared};
use racelab_lang::ir::{Op, Value};

/// What a world operation needs besides its arguments.
pub struct OpCtx {
    /// The current time, in milliseconds since the epoch (sets mtime on writes).
    pub now: i64,
    /// The actor taking the step: a real backend performs it in that actor's thread or process.
    pub actor: usize,
}

/// A world that performs the language's file operations: the model's filesystem, or a real
/// directory.
///
/// Call order: `perform` once per step, in the order the schedule dictates. Implementations must
/// map every failure to an [`racelab_lang::ir::Errno`]; `Err(String)` is reserved for misuse by the
/// scenario (a path that is not a string), which stops the actor.
pub trait World: Signals + Sql {
    fn perform(
        &mut self,
        op: Op,
        args: &[Value],
        cx: &OpCtx,
    ) -> Result<Result<Value, racelab_lang::ir::Errno>, String>;
    /// The other answers the operation just performed was as allowed to give (each distinct
    /// from the one it gave and from each other), for the engines to choose among (see
    /// `Program::explores_answers`); taken, so they are asked once per step. Real worlds give
    /// the one answer reality gave: the default, none.
    fn other_answers(&mut self) -> Vec<Result<Value, racelab_lang::ir::Errno>> {
        Vec::new()
    }
    /// The engine chose answer `index` (0: the one `perform` gave) among the operation's
    /// allowed answers: a world whose answers differ in their effects makes the chosen one's.
    fn answer_taken(&mut self, _index: usize) {}
    /// Whether `path` exists, for invariants (not a step).
    fn observe_exists(&self, path: &str) -> bool;
    /// The contents of a regular file at `path`, for invariants (not a step).
    fn observe_contents(&self, path: &str) -> Option<String>;
    /// The actor ended (or died): a world lets go of what it held for it (its descriptors, its
    /// database connection).
    fn actor_ended(&mut self, _actor: usize) {}
}

/// Signals and faults made real: SIGKILL, the signal, SIGSTOP sent to the actor's process. The
/// defaults deliver nothing (the model's actors are not processes).
pub trait Signals {
    /// A fault lands on `actor`. `handled` says whether the actor has a handler for the signal.
    /// An `Err` is an infrastructure failure (the signal could not be delivered), never a
    /// finding.
    fn fault(
        &mut self,
        _actor: usize,
        _fault: &racelab_lang::ir::FaultKind,
        _handled: bool,
    ) -> Result<(), String> {
        Ok(())
    }

    /// The actor installed (or removed) a handler for `signal`: a real process catches it from
    /// now on.
    fn handler(
        &mut self,
        _actor: usize,
        _signal: racelab_lang::ir::Signal,
        _installed: bool,
    ) -> Result<(), String> {
        Ok(())
    }
}

/// SQL and connections on a real database server. Every default is `None`: "no real database
/// here", and the machine uses its model database.
pub trait Sql {
    /// Runs an SQL statement on `actor`'s own connection.
    fn sql(&mut self, _actor: usize, _stmt: &Prepared, _args: &[Value]) -> Option<Outcome> {
        None
    }

    /// An invariant's `sql("SELECT ...")` on the real database's committed data.
    fn observe_sql(&self, _stmt: &Prepared, _args: &[Value]) -> Option<Result<Value, String>> {
        None
    }

    /// `connect(db)`: a real connection to the server's database `db` for `actor`, known to the
    /// machine as connection `handle`. `Some(Err)` is an infrastructure failure.
    fn connect(&mut self, _actor: usize, _handle: usize, _db: &str) -> Option<Result<(), String>> {
        None
    }

    /// `close(handle)`: closes that connection and waits until the server has forgotten it, so
    /// that `connections()` never counts a closed one.
    fn close(&mut self, _handle: usize) -> Option<Result<(), String>> {
        None
    }

    /// An invariant's `connections(db)`: the server's own count of open connections to `db`.
    fn observe_connections(&self, _db: &str) -> Option<Result<i64, String>> {
        None
    }
}
