//! Statement-level forced replay on a real database: the recorded schedule, one statement per
//! step, each actor on its own real connection, checked against the model in lockstep.

use std::sync::Arc;

use super::{Backend, DbInfo, DbSpec, RealDbWorld};
use crate::backend::forced::{lockstep, Forced, ForcedError, Lockstep};
use racelab_core::model::Machine;
use racelab_core::replay::trace_of;
use racelab_core::schedule::Schedule;
use racelab_lang::ir::Program;

/// What a forced replay on a real database showed: `env` is the server and its levels.
pub type DbForced = Forced<DbInfo>;

/// Replays `sched` on a fresh database of `spec` (dropped after), one real connection per actor.
pub fn forced_replay(
    prog: &Arc<Program>,
    sched: &Schedule,
    spec: &DbSpec,
) -> Result<DbForced, ForcedError> {
    DbReplayer::new(spec).replay(prog, sched)
}

/// Forced replays of one program that share one database of `spec`: created at the first
/// replay, put back to the setup's state ([`super::Backend::reset`]) before each later one,
/// dropped with the replayer. Creating a PostgreSQL database costs more than a replay. A
/// scenario with `database NAME`s gets fresh databases every time: it counts the server's
/// connections to them, and a session of the previous replay that the server has not yet
/// forgotten would be counted.
pub struct DbReplayer {
    spec: DbSpec,
    /// The database and the program it was set up for.
    open: Option<(Arc<Program>, Arc<dyn Backend>)>,
}

impl DbReplayer {
    pub fn new(spec: &DbSpec) -> DbReplayer {
        DbReplayer {
            spec: spec.clone(),
            open: None,
        }
    }

    fn backend(&mut self, prog: &Arc<Program>) -> Result<Arc<dyn Backend>, String> {
        let shareable = prog.database.as_ref().is_some_and(|d| d.names.is_empty());
        if let Some((p, backend)) = &self.open {
            if shareable && Arc::ptr_eq(p, prog) {
                backend.reset()?;
                return Ok(Arc::clone(backend));
            }
        }
        self.open = None;
        let backend = self.spec.open(prog)?;
        if shareable {
            self.open = Some((Arc::clone(prog), Arc::clone(&backend)));
        }
        Ok(backend)
    }

    /// Replays `sched`, one real connection per actor.
    pub fn replay(
        &mut self,
        prog: &Arc<Program>,
        sched: &Schedule,
    ) -> Result<DbForced, ForcedError> {
        sched.check_fits(prog)?;
        if prog.database.is_none() {
            return Err(ForcedError::Infrastructure(format!(
                "{}/{} declares no database; a database backend has nothing to run",
                prog.scenario, prog.variant
            )));
        }
        let backend = self.backend(prog).map_err(ForcedError::Infrastructure)?;
        replay_on(prog, sched, backend)
    }
}

fn replay_on(
    prog: &Arc<Program>,
    sched: &Schedule,
    backend: Arc<dyn Backend>,
) -> Result<DbForced, ForcedError> {
    let world = RealDbWorld::new(prog, backend).map_err(ForcedError::Infrastructure)?;
    let info = world.info().with_scenario_levels(prog);
    let mut real = Machine::with_fs(Arc::clone(prog), world);
    let Lockstep {
        divergence,
        steered,
    } = lockstep(prog, sched, &mut real)?;
    let mut trace = trace_of(&real);
    mark_completions(&mut trace);
    Ok(DbForced {
        broken: real.broken().to_vec(),
        end: real.end(),
        trace,
        divergence,
        steered,
        env: info,
    })
}

/// Marks the result of a statement that had been waiting in the server, as isolationtester
/// prints `<... completed>`: the step after an actor's `<waiting>` step is its completion.
pub(crate) fn mark_completions(trace: &mut reports::Trace) {
    let mut waiting: Vec<bool> = vec![false; trace.actors.len()];
    for step in &mut trace.steps {
        let Some(a) = step.actor.filter(|&a| a < waiting.len()) else {
            continue;
        };
        let now_waiting = step.result.contains("<waiting>");
        if waiting[a] && !now_waiting {
            step.result = format!("<... completed> {}", step.result);
        }
        waiting[a] = now_waiting;
    }
}
