//! Every schedule, depth first, remembering only the current path (shuttle's `DfsScheduler`).

use super::random::Xorshift64Star;
use super::{Chooser, Last};

/// One choice point of the current path: what was chosen, and whether it was the last of the
/// choices offered there (then the point has nothing left to try).
#[derive(Debug, Clone, Copy)]
struct Level {
    choice: usize,
    last: bool,
}

/// A stateless depth-first enumeration of schedules: each execution replays the current path
/// up to its deepest choice point with untried choices, takes the next choice there, and
/// takes the first choice at every new point below. It needs nothing but the executions
/// themselves (no clone, no state fingerprint), so it suits executions of real processes;
/// the model's stateful search (native-dfs) does far better where states can be compared.
///
/// It assumes an execution is deterministic given its schedule. Where one is not (a replayed
/// prefix offers other choices than before), the execution is cut there, the subtree below is
/// dropped, and [`Dfs::divergences`] counts it.
#[derive(Debug, Clone)]
pub struct Dfs {
    seed: u64,
    data: Xorshift64Star,
    levels: Vec<Level>,
    /// The level the current execution changes (the deepest one with untried choices when it
    /// started); levels above it are replayed, levels below it are new.
    pivot: Option<usize>,
    depth: usize,
    executions: u64,
    exhausted: bool,
    divergences: u64,
}

impl Dfs {
    /// `seed` seeds the same random words ([`Chooser::next_u64`]) for every execution: they
    /// are not enumerated, only kept fixed, so that executions are repeatable.
    pub fn new(seed: u64) -> Dfs {
        Dfs {
            seed,
            data: Xorshift64Star::new(seed),
            levels: Vec::new(),
            pivot: None,
            depth: 0,
            executions: 0,
            exhausted: false,
            divergences: 0,
        }
    }

    /// True once every schedule has been enumerated: `new_execution` said there is no more.
    pub fn exhausted(&self) -> bool {
        self.exhausted
    }

    /// Executions whose replayed prefix offered other choices than before (cut there).
    pub fn divergences(&self) -> u64 {
        self.divergences
    }

    fn choose(&mut self, offered: &[usize]) -> Option<usize> {
        let &first = offered.first()?;
        let depth = self.depth;
        let choice = if depth >= self.levels.len() {
            self.levels.push(Level {
                choice: first,
                last: offered.len() == 1,
            });
            first
        } else {
            let kept = self.levels[depth].choice;
            let Some(i) = offered.iter().position(|&c| c == kept) else {
                // Not deterministic given the schedule: nothing below here can be trusted.
                self.levels.truncate(depth);
                self.divergences += 1;
                return None;
            };
            if Some(depth) == self.pivot {
                let next = offered.get(i + 1).copied();
                let Some(next) = next else {
                    // Fewer choices than the last time here: drop this level's subtree.
                    self.levels.truncate(depth);
                    self.divergences += 1;
                    return None;
                };
                self.levels.truncate(depth);
                self.levels.push(Level {
                    choice: next,
                    last: i + 2 == offered.len(),
                });
                next
            } else {
                kept
            }
        };
        self.depth += 1;
        Some(choice)
    }
}

impl Chooser for Dfs {
    fn new_execution(&mut self) -> bool {
        if self.exhausted {
            return false;
        }
        if self.executions > 0 {
            self.pivot = self.levels.iter().rposition(|l| !l.last);
            if self.pivot.is_none() {
                self.exhausted = true;
                return false;
            }
        }
        self.executions += 1;
        self.depth = 0;
        self.data = Xorshift64Star::new(self.seed);
        true
    }

    fn next_choice(&mut self, runnable: &[usize], _last: Option<Last>) -> Option<usize> {
        self.choose(runnable)
    }

    fn next_thread(&mut self, _actor: usize, ready: usize) -> Option<usize> {
        let threads: Vec<usize> = (0..ready).collect();
        self.choose(&threads)
    }

    fn next_u64(&mut self) -> u64 {
        self.data.next()
    }

    fn end_execution(&mut self) {
        if self.depth < self.levels.len() {
            // The execution ended before its path did: not deterministic given the schedule
            // when it did not even reach the choice it was to change. Forget the rest.
            if self.pivot.is_some_and(|p| self.depth <= p) {
                self.divergences += 1;
            }
            self.levels.truncate(self.depth);
        }
    }
}
