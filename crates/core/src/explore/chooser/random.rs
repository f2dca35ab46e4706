//! Random choosers over the native engines' generator: uniform ([`Random`], native-random) and
//! a walk that preempts where it matters ([`Walk`], gate-random).

use super::{Chooser, Last};

/// A small, fast, seedable generator (xorshift64*): the engines need reproducible choices, not
/// cryptographic ones.
///
/// Deliberately native-random's and native-pct's generator and seeding since they were
/// written: the runs-to-first-finding of the built-in scenarios are measured with this stream
/// (`crates/core/tests/native_golden.rs` pins them). A swap to splitmix once moved
/// nfs-mailman-2.1's mutual_exclusion at seed 0x5eed from 9,924 runs to 31,537, past CI's
/// quick budget of 20,000.
#[derive(Debug, Clone)]
pub struct Xorshift64Star(u64);

impl Xorshift64Star {
    pub fn new(seed: u64) -> Xorshift64Star {
        Xorshift64Star(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next word. (An endless generator, not an `Iterator`: it has no end to signal.)
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough below `n` (at least 1) for picking among a few choices.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// native-random: a uniformly random runnable choice (an actor's step or a fault) at every
/// step, one generator for the whole exploration.
#[derive(Debug, Clone)]
pub struct Random {
    rng: Xorshift64Star,
}

impl Random {
    pub fn new(seed: u64) -> Random {
        Random {
            rng: Xorshift64Star::new(seed),
        }
    }
}

impl Chooser for Random {
    fn next_choice(&mut self, runnable: &[usize], _last: Option<Last>) -> Option<usize> {
        if runnable.is_empty() {
            return None;
        }
        // A draw at every step, also when only one choice can go: the stream is the measured one.
        Some(runnable[self.rng.below(runnable.len())])
    }

    fn next_thread(&mut self, _actor: usize, ready: usize) -> Option<usize> {
        Some(self.rng.below(ready))
    }

    fn next_u64(&mut self) -> u64 {
        self.rng.next()
    }
}

/// A random walk that keeps running one process and preempts it mostly where it matters:
/// after a step that changed something others see, it switches to another runnable actor one
/// time in two; after any other step, one time in four. A real program makes many calls per
/// decision, and uniform choices at every call split every read-decide-write sequence: the
/// flufl.lock `crash` double break, not found in 276 uniform executions through the gate, was
/// found in 66 this way (docs/design-decisions.md). A fault, when one may land, lands one time
/// in `fault_odds` (or when no actor can go).
#[derive(Debug, Clone)]
pub struct Walk {
    /// Reseeded for every execution from the exploration's seed and the execution's number:
    /// the stream gate-random's findings were measured with (the flufl.lock crash race within
    /// 45-66 executions). One xorshift stream for the whole exploration instead missed it in 78
    /// executions on CI's tempdir row.
    rng: crate::rng::Rng,
    seed: u64,
    executions: u64,
    actors: usize,
    fault_odds: usize,
}

impl Walk {
    /// `actors` is the number of choices that are actors; the rest are faults.
    pub fn new(seed: u64, actors: usize, fault_odds: usize) -> Walk {
        Walk {
            rng: crate::rng::Rng(seed),
            seed,
            executions: 0,
            actors,
            fault_odds,
        }
    }
}

impl Chooser for Walk {
    fn new_execution(&mut self) -> bool {
        self.rng = crate::rng::Rng(self.seed ^ self.executions.wrapping_mul(0xA24B_AED4_963E_E407));
        self.executions += 1;
        true
    }

    fn next_choice(&mut self, runnable: &[usize], last: Option<Last>) -> Option<usize> {
        let (actors, faults): (Vec<usize>, Vec<usize>) =
            runnable.iter().partition(|&&c| c < self.actors);
        if !faults.is_empty() && (actors.is_empty() || self.rng.below(self.fault_odds) == 0) {
            return Some(faults[self.rng.below(faults.len())]);
        }
        if let Some(Last {
            actor: prev,
            shared,
        }) = last
        {
            if actors.contains(&prev) {
                let others: Vec<usize> = actors.iter().copied().filter(|&a| a != prev).collect();
                let switch = !others.is_empty() && self.rng.below(if shared { 2 } else { 4 }) == 0;
                return Some(if switch {
                    others[self.rng.below(others.len())]
                } else {
                    prev
                });
            }
        }
        actors.get(self.rng.below(actors.len())).copied()
    }

    fn next_thread(&mut self, _actor: usize, ready: usize) -> Option<usize> {
        Some(self.rng.below(ready))
    }

    fn next_u64(&mut self) -> u64 {
        self.rng.next()
    }
}
