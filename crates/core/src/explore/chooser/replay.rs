//! Following a recorded schedule: the model's replay of a token and the gate's.

use super::{Chooser, Last};

/// Where a followed schedule and the execution parted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Divergence {
    /// The schedule's choice at position `step` (from 0) was not one of `runnable`.
    Choice {
        step: usize,
        wanted: usize,
        runnable: Vec<usize>,
    },
    /// The schedule's choice at position `step` picks thread `wanted` of `actor`, which had
    /// only `ready` threads at gated calls.
    Thread {
        step: usize,
        wanted: usize,
        actor: usize,
        ready: usize,
    },
}

/// Follows `steps` for one execution, then stops: at the schedule's end, or where the
/// execution offers no such choice, which [`Replay::divergence`] then tells.
#[derive(Debug, Clone)]
pub struct Replay<'a> {
    steps: &'a [u8],
    at: usize,
    started: bool,
    divergence: Option<Divergence>,
}

impl<'a> Replay<'a> {
    pub fn new(steps: &'a [u8]) -> Replay<'a> {
        Replay {
            steps,
            at: 0,
            started: false,
            divergence: None,
        }
    }

    /// Why the execution stopped before the schedule's end, if it did.
    pub fn divergence(&self) -> Option<&Divergence> {
        self.divergence.as_ref()
    }

    /// The schedule's choices followed so far.
    pub fn followed(&self) -> usize {
        self.at
    }

    fn next_wanted(&mut self) -> Option<usize> {
        if self.divergence.is_some() {
            return None;
        }
        self.steps.get(self.at).map(|&c| usize::from(c))
    }
}

impl Chooser for Replay<'_> {
    /// A schedule is one execution.
    fn new_execution(&mut self) -> bool {
        !std::mem::replace(&mut self.started, true)
    }

    fn next_choice(&mut self, runnable: &[usize], _last: Option<Last>) -> Option<usize> {
        let wanted = self.next_wanted()?;
        if !runnable.contains(&wanted) {
            self.divergence = Some(Divergence::Choice {
                step: self.at,
                wanted,
                runnable: runnable.to_vec(),
            });
            return None;
        }
        self.at += 1;
        Some(wanted)
    }

    fn next_thread(&mut self, actor: usize, ready: usize) -> Option<usize> {
        let wanted = self.next_wanted()?;
        if wanted >= ready {
            self.divergence = Some(Divergence::Thread {
                step: self.at,
                wanted,
                actor,
                ready,
            });
            return None;
        }
        self.at += 1;
        Some(wanted)
    }
}
