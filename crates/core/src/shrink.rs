//! Shrinking a failing schedule to the fewest context switches, then steps, then faults.
//!
//! In the spirit of Jalbert and Sen's trace simplification (FSE 2010): a schedule is a sequence
//! of *blocks* (runs of one choice: an actor's steps, or a fault). Moving a block next to
//! another block of the same actor merges them and removes context switches; dropping a fault
//! removes a fault. Each candidate is replayed on the model and kept only when every step is
//! still runnable, the same invariant still breaks, and the candidate is strictly smaller by
//! (switches, steps, faults). The search is greedy, deterministic and bounded, so it always
//! ends fast; the original schedule is kept beside the shrunk one by the callers.

use std::sync::Arc;

use crate::explore::chooser::{Chooser, Replay};
use crate::model::Machine;
use crate::schedule::Schedule;
use racelab_lang::ir::Program;

/// The most candidates replayed per schedule: shrinking must never cost more than exploring.
const MAX_ATTEMPTS: usize = 1_000;

/// What "smaller" means, in order: context switches, then steps, then faults.
fn size(actors: usize, steps: &[u8]) -> (usize, usize, usize) {
    (
        switches(steps),
        steps.len(),
        steps.iter().filter(|&&c| usize::from(c) >= actors).count(),
    )
}

fn switches(steps: &[u8]) -> usize {
    steps.windows(2).filter(|w| w[0] != w[1]).count()
}

/// Runs of one choice: (choice, length).
fn blocks_of(steps: &[u8]) -> Vec<(u8, usize)> {
    let mut out: Vec<(u8, usize)> = Vec::new();
    for &a in steps {
        match out.last_mut() {
            Some((b, n)) if *b == a => *n += 1,
            _ => out.push((a, 1)),
        }
    }
    out
}

fn flatten(blocks: &[(u8, usize)]) -> Vec<u8> {
    blocks
        .iter()
        .flat_map(|(a, n)| std::iter::repeat_n(*a, *n))
        .collect()
}

/// Candidates one edit away from `steps`, most promising first: every fault dropped; every
/// block moved next to the nearest block of the same choice before or after it (which merges
/// them); every block swapped with its right neighbour.
fn candidates(actors: usize, steps: &[u8]) -> Vec<Vec<u8>> {
    let blocks = blocks_of(steps);
    let mut out = Vec::new();
    for (i, &(c, _)) in blocks.iter().enumerate() {
        if usize::from(c) >= actors {
            let mut b = blocks.clone();
            b.remove(i);
            out.push(flatten(&b));
        }
    }
    for i in 0..blocks.len() {
        let c = blocks[i].0;
        // Later: move block i to just before the next block of c (joining it).
        if let Some(j) = (i + 1..blocks.len()).find(|&j| blocks[j].0 == c) {
            if j > i + 1 {
                let mut b = blocks.clone();
                let moved = b.remove(i);
                b.insert(j - 1, moved);
                out.push(flatten(&b));
            }
        }
        // Earlier: move block i to just after the previous block of c.
        if let Some(j) = (0..i).rev().find(|&j| blocks[j].0 == c) {
            if j + 1 < i {
                let mut b = blocks.clone();
                let moved = b.remove(i);
                b.insert(j + 1, moved);
                out.push(flatten(&b));
            }
        }
    }
    for i in 0..blocks.len().saturating_sub(1) {
        let mut b = blocks.clone();
        b.swap(i, i + 1);
        out.push(flatten(&b));
    }
    out
}

/// Shrinks `sched` (which must carry its target invariant) to a schedule that breaks the same
/// invariant with no more context switches, steps or faults. Without a target, or if the
/// schedule does not reproduce, it is returned as it is.
pub fn shrink(prog: &Arc<Program>, sched: &Schedule) -> Schedule {
    let Some(target) = sched.target.clone() else {
        return sched.clone();
    };
    let steps = shrink_steps(
        prog.actors.len(),
        &sched.steps,
        MAX_ATTEMPTS,
        &mut |candidate| reproduces(prog, candidate, &target),
    );
    Schedule {
        steps,
        ..sched.clone()
    }
}

/// Runs `steps` on a fresh machine as the shared [`Replay`] chooser follows them; when every
/// step is runnable and `target` breaks, returns the prefix that ends where it broke.
fn reproduces(prog: &Arc<Program>, steps: &[u8], target: &str) -> Option<Vec<u8>> {
    let mut m = Machine::new(Arc::clone(prog));
    let mut follow = Replay::new(steps);
    follow.new_execution();
    let mut runnable = Vec::new();
    loop {
        runnable.clear();
        runnable.extend(m.runnable());
        let Some(a) = follow.next_choice(&runnable, None) else {
            break;
        };
        m.step(a);
        if let Some(b) = m.broken().iter().find(|b| b.invariant == target) {
            return Some(steps[..b.at_step].to_vec());
        }
    }
    if follow.divergence().is_some() {
        return None;
    }
    m.broken()
        .iter()
        .find(|b| b.invariant == target)
        .map(|b| steps[..b.at_step].to_vec())
}

/// The search itself, for any way of replaying: `reproduces(candidate)` runs a candidate and
/// returns the prefix that broke the target invariant, or `None`. Choices `>= actors` are
/// faults. The gate uses it with real processes, and so a much smaller `max_attempts`.
pub fn shrink_steps(
    actors: usize,
    steps: &[u8],
    max_attempts: usize,
    reproduces: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
) -> Vec<u8> {
    let Some(mut best) = reproduces(steps) else {
        return steps.to_vec();
    };
    let mut attempts = 0;
    'improve: while attempts < max_attempts {
        let current = size(actors, &best);
        for candidate in candidates(actors, &best) {
            attempts += 1;
            if attempts > max_attempts {
                break 'improve;
            }
            if candidate == best {
                continue;
            }
            if let Some(prefix) = reproduces(&candidate) {
                if size(actors, &prefix) < current {
                    best = prefix;
                    continue 'improve;
                }
            }
        }
        break;
    }
    best
}
