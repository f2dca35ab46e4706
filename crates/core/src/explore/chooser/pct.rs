//! Probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010), as native-pct has
//! always run it: random distinct priorities, `depth - 1` priority change points at random
//! steps, and always the highest-priority runnable choice.

use super::random::Xorshift64Star;
use super::{Chooser, Last};

/// PCT over `choices` choices (actors, then faults, then the model's duration digits: a fault
/// has a priority like an actor, so it lands when it is the highest runnable choice).
///
/// Deliberately native-pct's algorithm to the draw, quirks included, because the engines'
/// runs-to-first-finding are measured with it (`crates/core/tests/native_golden.rs` pins
/// them): the length the change points are drawn below starts at 32 and only grows, to the
/// longest execution so far (never shrinks, never a mean); two change points that fall on the
/// same step make one change (the first); a change does not advance the step. An attempt to
/// "improve" the estimate moved mailman-2.1's first finding from 78-1,258 runs to 641-3,411.
#[derive(Debug, Clone)]
pub struct Pct {
    rng: Xorshift64Star,
    depth: usize,
    choices: usize,
    /// The number of steps an execution takes, estimated from the longest one so far: change
    /// points are drawn among them.
    length: usize,
    priority: Vec<usize>,
    changes: Vec<usize>,
    step: usize,
}

impl Pct {
    pub fn new(seed: u64, depth: usize, choices: usize) -> Pct {
        Pct {
            rng: Xorshift64Star::new(seed),
            depth,
            choices,
            length: 32,
            priority: Vec::new(),
            changes: Vec::new(),
            step: 0,
        }
    }

    fn highest(&self, runnable: &[usize]) -> Option<usize> {
        runnable.iter().copied().max_by_key(|&c| self.priority[c])
    }
}

impl Chooser for Pct {
    fn new_execution(&mut self) -> bool {
        // Priorities depth..depth+n, distinct and shuffled; change points lower a choice to
        // 1..depth-1, below every initial priority.
        self.priority = (0..self.choices).map(|i| self.depth + i).collect();
        for i in (1..self.choices).rev() {
            self.priority.swap(i, self.rng.below(i + 1));
        }
        self.changes = (1..self.depth)
            .map(|_| self.rng.below(self.length))
            .collect();
        self.step = 0;
        true
    }

    fn next_choice(&mut self, runnable: &[usize], _last: Option<Last>) -> Option<usize> {
        let chosen = self.highest(runnable)?;
        let step = self.step;
        self.step += 1;
        match self.changes.iter().position(|&at| at == step) {
            Some(k) => {
                self.priority[chosen] = self.depth - 1 - k;
                self.highest(runnable)
            }
            None => Some(chosen),
        }
    }

    fn next_thread(&mut self, _actor: usize, ready: usize) -> Option<usize> {
        Some(self.rng.below(ready))
    }

    fn next_u64(&mut self) -> u64 {
        self.rng.next()
    }

    fn end_execution(&mut self) {
        self.length = self.length.max(self.step);
    }
}
