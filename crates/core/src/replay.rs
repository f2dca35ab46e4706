//! Deterministic replay of a portable schedule on the model, producing the step table: the
//! machine stepped as the shared [`Replay`] chooser follows the schedule.

use std::sync::Arc;

use crate::explore::chooser::{Chooser, Divergence, Replay};
use crate::model::{Broken, End, Machine, StepWhat};
use crate::schedule::{Schedule, TokenError};
use racelab_lang::ir::Program;

/// What a replay showed.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// Every invariant broken by the end of the schedule, in the order they broke.
    pub broken: Vec<Broken>,
    /// Set when the execution ended (all finished, deadlock, livelock) within the schedule.
    pub end: Option<End>,
    pub trace: reports::Trace,
}

impl Replayed {
    /// True when the schedule's target (if any) broke.
    pub fn reproduced(&self, sched: &Schedule) -> bool {
        match &sched.target {
            Some(t) => self.broken.iter().any(|b| &b.invariant == t),
            None => !self.broken.is_empty(),
        }
    }
}

/// Runs `sched` on a fresh model machine for `prog`, refusing tokens that do not fit.
pub fn replay(prog: &Arc<Program>, sched: &Schedule) -> Result<Replayed, TokenError> {
    sched.check_fits(prog)?;
    let mut m = Machine::new(Arc::clone(prog));
    m.record_details();
    let mut follow = Replay::new(&sched.steps);
    follow.new_execution();
    let mut runnable = Vec::new();
    loop {
        runnable.clear();
        runnable.extend(m.runnable());
        match follow.next_choice(&runnable, None) {
            Some(a) => m.step(a),
            None => break,
        }
    }
    if let Some(Divergence::Choice { step, wanted, .. }) = follow.divergence() {
        return Err(TokenError::Diverged {
            step: step + 1,
            actor: *wanted,
            why: why_not_runnable(prog, &m, *wanted),
        });
    }
    let trace = trace_of(&m);
    Ok(Replayed {
        broken: m.broken().to_vec(),
        end: m.end(),
        trace,
    })
}

/// Why choice `a` of a schedule cannot be taken by `m`, where the replay stopped.
fn why_not_runnable(prog: &Program, m: &Machine, a: usize) -> String {
    if a >= m.choice_count() {
        let faults = prog.faults.len();
        let decision = if prog.has_decision_choice() {
            " and a decision choice"
        } else {
            ""
        };
        format!(
            "does not exist (the scenario has {} actors, {faults} faults{decision})",
            m.actor_count()
        )
    } else if m.is_finished() {
        "comes after the end of the execution".to_string()
    } else if Some(a) == m.decision_choice() || m.deciding_actor().is_some() {
        "is not a digit of the duration or answer being chosen here".to_string()
    } else if a >= m.actor_count() {
        format!(
            "is fault `{}`, which cannot land here",
            prog.faults[a - m.actor_count()].name
        )
    } else {
        format!("is not runnable ({:?})", m.status(a))
    }
}

/// The machine's recorded steps as a [`reports::Trace`].
pub fn trace_of<F: crate::model::world::World>(m: &Machine<F>) -> reports::Trace {
    let prog = m.program();
    let steps = m
        .details()
        .iter()
        .map(|d| {
            let (operation, line) = match d.what {
                StepWhat::Op(label) => (
                    prog.labels[label as usize].text.clone(),
                    prog.labels[label as usize].line,
                ),
                StepWhat::Fault(f) => (fault_text(&prog.faults[f]), 0),
            };
            reports::TraceStep {
                actor: Some(d.actor),
                time_ms: d.time_ms,
                operation,
                result: d.result.clone(),
                broke: d.broke.clone(),
                line,
            }
        })
        .collect();
    let verdict = match m.broken().last() {
        Some(_) => m
            .broken()
            .iter()
            .map(|b| format!("{} broke: {}", b.invariant, b.message))
            .collect::<Vec<_>>()
            .join("; "),
        None => match m.end() {
            Some(End::Finished) => "finished; every invariant held".to_string(),
            _ => "no invariant broke within the schedule".to_string(),
        },
    };
    reports::Trace {
        scenario: prog.scenario.clone(),
        variant: prog.variant.clone(),
        actors: prog.actors.iter().map(|a| a.name.to_string()).collect(),
        steps,
        verdict,
    }
}

pub use crate::shrink::shrink;

/// A fault's trace row: short enough for a table column, naming the fault as declared.
fn fault_text(f: &racelab_lang::ir::FaultIr) -> String {
    use racelab_lang::ir::{format_duration, FaultKind};
    let what = match &f.kind {
        FaultKind::Crash => "crash".to_string(),
        FaultKind::Stall { for_ms } => format!("stall {}", format_duration(*for_ms)),
        FaultKind::Signal { signal, .. } => format!("SIG{}", signal.name()),
        FaultKind::Retransmit => "lost link reply".to_string(),
    };
    format!("FAULT {}: {what}", f.name)
}

/// A schedule recorded on a variant whose `stat` and `write` are one step each (the NFS client
/// model), re-addressed to one that makes them two (`Program::split_calls`): each recorded step
/// of an actor that leaves it half way through such a call is followed by the call's second
/// half, so the same calls happen in the same order. Used by `replay --on-variant`.
pub fn split_halves(prog: &Arc<Program>, sched: &Schedule) -> Schedule {
    let mut m = Machine::new(Arc::clone(prog));
    let actors = prog.actors.len();
    let mut steps = Vec::with_capacity(sched.steps.len());
    for &c in &sched.steps {
        steps.push(c);
        if m.is_finished() || !m.is_runnable(c as usize) {
            // Let the replay report where the schedule stops fitting.
            continue;
        }
        m.step(c as usize);
        while (c as usize) < actors && m.mid_call(c as usize) && m.is_runnable(c as usize) {
            m.step(c as usize);
            steps.push(c);
        }
    }
    Schedule {
        steps,
        ..sched.clone()
    }
}
