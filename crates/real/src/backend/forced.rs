//! Forced replay: a recorded schedule executed step by step by real actors, checked against the model.
//!
//! The interpreter is the turnstile: it lets exactly one actor perform its next operation, for
//! real, in the recorded order. The model runs the same schedule in lockstep; the first step
//! whose real result differs from the model's (success where the model said EEXIST, another
//! link count) stops the run and is reported with both values.

use std::path::Path;
use std::sync::Arc;

use super::fsinfo::{fs_info, FsInfo};
use super::{start, ActorFs, ActorMode, RealFs};
use racelab_core::model::world::World;
use racelab_core::model::{Broken, End, Machine, StepOutcome, EPOCH_MS};
use racelab_core::replay::trace_of;
use racelab_core::schedule::{Schedule, TokenError};
use racelab_lang::ir::{Program, Value};

/// The first step where reality disagreed with the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    /// 1-based, as in the step table.
    pub step: usize,
    pub actor: String,
    pub operation: String,
    pub model: String,
    pub real: String,
}

/// What a forced replay showed, on any world: `Env` says where it ran ([`FsRun`] for a
/// filesystem, `DbInfo` for a database server).
#[derive(Debug, Clone)]
pub struct Forced<Env> {
    pub broken: Vec<Broken>,
    pub end: Option<End>,
    pub trace: reports::Trace,
    pub divergence: Option<Divergence>,
    pub env: Env,
}

impl<Env> Forced<Env> {
    /// True when the schedule's target broke on the real system (and nothing diverged first).
    pub fn reproduced(&self, sched: &Schedule) -> bool {
        self.divergence.is_none()
            && match &sched.target {
                Some(t) => self.broken.iter().any(|b| &b.invariant == t),
                None => !self.broken.is_empty(),
            }
    }
}

/// Where a forced replay on a filesystem ran: the filesystem, and the actors' kind.
#[derive(Debug, Clone)]
pub struct FsRun {
    pub fs: FsInfo,
    pub mode: ActorMode,
}

#[derive(Debug, thiserror::Error)]
pub enum ForcedError {
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The real system could not be set up or failed under us: not a result about the scenario.
    #[error("{0}")]
    Infrastructure(String),
    /// SIGINT or SIGTERM asked us to stop; everything real was cleaned up.
    #[error("interrupted by signal {0}; workers and run directories were cleaned up")]
    Interrupted(i32),
}

/// Replays `sched` with real actors in a fresh directory under `roots[0]`, which is removed
/// after. With several roots (mounts of one export through different NFS clients), each actor
/// works through its client's mount (see [`super::actor_roots`]).
pub fn forced_replay(
    prog: &Arc<Program>,
    sched: &Schedule,
    roots: &[std::path::PathBuf],
    mode: ActorMode,
) -> Result<Forced<FsRun>, ForcedError> {
    let root: &Path = roots
        .first()
        .map(|p| p.as_path())
        .ok_or_else(|| ForcedError::Infrastructure("no directory to run in".into()))?;
    sched.check_fits(prog)?;
    let infra = ForcedError::Infrastructure;
    let run_dir = tempfile::Builder::new()
        .prefix("racelab-run-")
        .tempdir_in(root)
        .map_err(|e| {
            infra(format!(
                "cannot create a run directory under {}: {e}; pass a writable directory",
                root.display()
            ))
        })?;
    let env = fs_info(run_dir.path())
        .map_err(|e| infra(format!("statfs {}: {e}", run_dir.path().display())))?;
    RealFs::open(run_dir.path())
        .and_then(|mut fs| fs.populate(&prog.fs, EPOCH_MS))
        .map_err(|e| infra(e.to_string()))?;
    let observer = RealFs::open(run_dir.path()).map_err(|e| infra(e.to_string()))?;
    let run_name = run_dir
        .path()
        .file_name()
        .unwrap_or_default()
        .to_os_string();
    let exec = start(mode, &super::actor_roots(prog, roots, &run_name)).map_err(infra)?;

    let mut real = Machine::with_fs(Arc::clone(prog), ActorFs::new(exec, observer));
    let divergence = lockstep(prog, sched, &mut real)?;
    let trace = trace_of(&real);
    let out = Forced {
        broken: real.broken().to_vec(),
        end: real.end(),
        trace,
        divergence,
        env: FsRun { fs: env, mode },
    };
    // Workers first (they hold files open under the run directory), then the directory.
    drop(real);
    run_dir
        .close()
        .map_err(|e| infra(format!("cannot remove the run directory: {e}")))?;
    Ok(out)
}

/// Runs `sched` on `real` (any world: real actors on a real directory, real database
/// connections, ...) and on a fresh model in lockstep, and returns the first step whose real
/// result differed from the model's. `real` keeps its state (trace, broken invariants) for the
/// caller. Infrastructure failures and interruptions are errors, not divergences.
pub(crate) fn lockstep<F: World>(
    prog: &Arc<Program>,
    sched: &Schedule,
    real: &mut Machine<F>,
) -> Result<Option<Divergence>, ForcedError> {
    sched.check_fits(prog)?;
    let infra = ForcedError::Infrastructure;
    real.record_details();
    let mut model = Machine::new(Arc::clone(prog));
    model.record_details();
    let mut divergence = None;
    for (i, &c) in sched.steps.iter().enumerate() {
        if let Some(sig) = super::cancel::requested() {
            return Err(ForcedError::Interrupted(sig));
        }
        let c = c as usize;
        if c >= model.choice_count() || !model.is_runnable(c) {
            return Err(TokenError::Diverged {
                step: i + 1,
                actor: c,
                why: "is not runnable on the model".into(),
            }
            .into());
        }
        if !real.is_runnable(c) {
            divergence = Some(Divergence {
                step: i + 1,
                actor: name_of(prog, c),
                operation: "(the next step)".into(),
                model: "runnable".into(),
                real: format!(
                    "not runnable: {}",
                    real.infrastructure_error()
                        .unwrap_or("the real run went elsewhere")
                ),
            });
            break;
        }
        model.step(c);
        real.step(c);
        if let Some(why) = real.infrastructure_error() {
            return Err(infra(format!("step {}: {why}", i + 1)));
        }
        let (m, r) = (
            model.last_outcome().map(comparable),
            real.last_outcome().map(comparable),
        );
        if m != r {
            let operation = real.details().last().map(|d| match d.what {
                racelab_core::model::StepWhat::Op(l) => prog.labels[l as usize].text.clone(),
                racelab_core::model::StepWhat::Fault(f) => format!("fault {}", prog.faults[f].name),
            });
            divergence = Some(Divergence {
                step: i + 1,
                actor: name_of(prog, c),
                operation: operation.unwrap_or_default(),
                model: m.map_or("nothing".into(), |o| describe(&o)),
                real: r.map_or("nothing".into(), |o| describe(&o)),
            });
            break;
        }
    }
    Ok(divergence)
}

fn name_of(prog: &Program, c: usize) -> String {
    match prog.actors.get(c) {
        Some(a) => a.name.to_string(),
        None => prog
            .faults
            .get(c - prog.actors.len())
            .map_or_else(|| format!("#{c}"), |f| format!("fault {}", f.name)),
    }
}

/// An outcome with what legitimately differs between systems masked: inode numbers, and a
/// directory's mtime (the model keeps it from the mkdir on; the kernel moves it with every
/// entry made or removed in the directory).
fn comparable(o: &StepOutcome) -> StepOutcome {
    match o {
        StepOutcome::Value(Value::Stat(s)) => {
            StepOutcome::Value(Value::Stat(racelab_lang::ir::Stat {
                ino: 0,
                mtime: if s.dir { 0 } else { s.mtime },
                ..*s
            }))
        }
        other => other.clone(),
    }
}

fn describe(o: &StepOutcome) -> String {
    match o {
        StepOutcome::Value(Value::None) => "ok".into(),
        StepOutcome::Value(Value::Stat(s)) => {
            format!("{{nlink {}, mtime {}, size {}}}", s.nlink, s.mtime, s.size)
        }
        StepOutcome::Value(v) => v.to_string(),
        StepOutcome::Error(e) => e.name().to_string(),
        StepOutcome::Blocked => "blocked".into(),
        StepOutcome::Fault => "fault landed".into(),
    }
}
