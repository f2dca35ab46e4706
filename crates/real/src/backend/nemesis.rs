//! The nemesis of free runs (Jepsen's word): a variant's declared faults happen for real at
//! random moments of a stress run — SIGKILL, SIGSTOP until the stall's virtual time is over,
//! the signal (caught by a real handler, or killing) and its follow-up SIGKILL.
//!
//! A moment is a step boundary: each fault is due after a number of steps drawn (from the run's
//! seed) uniformly below the variant's length, and lands at the first boundary after that at
//! which the model can interpret it — its target alive and not in the middle of a real call.
//! A real call cut in half (the kernel finished it or not?) has no model meaning, so the nemesis
//! never strikes one; between calls a worker process is idle, so the real signal reaches it
//! exactly where the model says. Landed faults are steps of the run's schedule, so the first
//! failing run's replay token carries them.

use std::sync::Arc;

use racelab_core::model::world::World;
use racelab_core::model::{Machine, Status};
use racelab_lang::ir::{FaultKind, Program};

/// Steps of one fault-free round-robin run of the model: the scale on which due steps are drawn.
pub(crate) fn expected_steps(prog: &Arc<Program>) -> usize {
    let mut m = Machine::new(Arc::clone(prog));
    let actors = prog.actors.len();
    let mut turn = 0usize;
    let mut steps = 0usize;
    while !m.is_finished() && steps < 10_000 {
        let Some(a) = (0..actors)
            .map(|k| (turn + k) % actors)
            .find(|&a| m.is_runnable(a))
        else {
            break;
        };
        m.step(a);
        turn = a + 1;
        steps += 1;
    }
    steps.max(1)
}

/// The faults the nemesis can make real: everything but a lost NFS reply (only the model can).
pub fn injectable(kind: &FaultKind) -> bool {
    !matches!(kind, FaultKind::Retransmit)
}

/// One run's plan: for each declared fault, the step count after which it is due (`None`:
/// never, for faults the nemesis cannot make real).
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    due: Vec<Option<usize>>,
}

impl Plan {
    /// Draws each fault's moment from `seed`, uniformly in `0..=steps`.
    pub(crate) fn draw(prog: &Program, steps: usize, seed: u64) -> Plan {
        let mut rng = racelab_core::rng::Rng(seed ^ 0x6e65_6d65_7369_7321);
        let due = prog
            .faults
            .iter()
            .map(|f| injectable(&f.kind).then(|| (rng.next() % (steps as u64 + 1)) as usize))
            .collect();
        Plan { due }
    }

    /// Lands one due fault, if one can land now; returns whether one did. Call under the
    /// machine's lock at every step boundary.
    pub(crate) fn strike<F: World>(&self, m: &mut Machine<F>) -> bool {
        let actors = m.actor_count();
        let done = m.schedule().len();
        for (f, due) in self.due.iter().enumerate() {
            let Some(due) = *due else { continue };
            let target = m.program().faults[f].target;
            if due <= done && m.status(target) != Status::InFlight && m.is_runnable(actors + f) {
                m.step(actors + f);
                return true;
            }
        }
        false
    }
}

/// Which faults landed in a finished run's schedule.
pub(crate) fn landed(prog: &Program, schedule: &[u8]) -> Vec<bool> {
    let actors = prog.actors.len();
    (0..prog.faults.len())
        .map(|f| schedule.iter().any(|&c| c as usize == actors + f))
        .collect()
}
