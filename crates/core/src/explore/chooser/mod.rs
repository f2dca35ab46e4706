//! One chooser for every engine that steps executions itself: which runnable choice goes next.
//!
//! Modelled on shuttle's `Scheduler` (new execution, next task, next random word): an engine
//! asks [`Chooser::new_execution`] before each execution (false: there are no more), then
//! [`Chooser::next_choice`] at every step, and tells [`Chooser::end_execution`] how long the
//! execution was. The native engines (`native-random`, `native-pct`, stepping the model's
//! `Machine`), the gate (stepping real processes) and both replays (the model's and the gate's)
//! drive these same choosers:
//!
//! - [`Random`]: a uniformly random runnable choice at every step (native-random);
//! - [`Walk`]: a random walk that stays with the last process and preempts it mostly after a
//!   step others can see (gate-random: a real program makes many calls per decision);
//! - [`Pct`]: probabilistic concurrency testing (native-pct, gate-pct);
//! - [`Replay`]: follows a recorded schedule and says where it diverged;
//! - [`Dfs`]: enumerates every schedule depth-first without remembering states (shuttle's
//!   `DfsScheduler`), for executions that cannot be cloned or fingerprinted, like the gate's.
//!
//! A choice is a number: `c < actors` is actor `c`'s next step, `actors + f` lands fault `f`
//! (and the model's duration digits come after the faults). shuttle and loom keep their own
//! schedulers: they are adapters (`shuttle_engine.rs`, `loom_engine.rs`). native-dfs is not a
//! chooser either: it is a stateful search over cloned machines (ARCHITECTURE.md says why).

mod dfs;
mod pct;
mod random;
mod replay;

pub use dfs::Dfs;
pub use pct::Pct;
pub use random::{Random, Walk, Xorshift64Star};
pub use replay::{Divergence, Replay};

/// What an engine can tell a chooser about the previous step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Last {
    /// The actor that took the step (the fault's target for a fault).
    pub actor: usize,
    /// The step changed something other actors can see (a file written, linked, removed).
    pub shared: bool,
}

/// Decides the schedule of one execution after another.
pub trait Chooser {
    /// Starts the next execution. False: there is none (a search is complete, a replay done),
    /// and the engine stops.
    fn new_execution(&mut self) -> bool {
        true
    }

    /// One of `runnable` (sorted, distinct), or None to stop this execution here (a replay
    /// has run out of steps or diverged; `runnable` is empty). `last` is the previous step
    /// where the engine knows it: the gate does, the native engines (whose choosers do not
    /// ask) pass None.
    fn next_choice(&mut self, runnable: &[usize], last: Option<Last>) -> Option<usize>;

    /// Which of the `ready` (two or more) threads of `actor` goes, `0..ready` in the order
    /// they started: the gate's second choice within a process. None stops the execution.
    /// The default runs the oldest thread.
    fn next_thread(&mut self, _actor: usize, _ready: usize) -> Option<usize> {
        Some(0)
    }

    /// A random word for the execution's other decisions (the gate seeds the programs' random
    /// bytes with it). A chooser without randomness of its own answers a fixed word, so its
    /// executions stay the same ones.
    fn next_u64(&mut self) -> u64 {
        FIXED_WORD
    }

    /// The execution has ended (PCT learns how long executions are).
    fn end_execution(&mut self) {}
}

/// What a chooser without randomness of its own answers [`Chooser::next_u64`].
const FIXED_WORD: u64 = 0x5eed;

#[cfg(test)]
mod tests;
