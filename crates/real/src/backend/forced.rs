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

/// A step where the model allowed more than one answer (see `Program::explores_answers`) and
/// reality gave another than the token's: the replay followed reality's, as the model allows.
#[derive(Debug, Clone, PartialEq)]
pub struct Steer {
    /// 1-based, as in the step table.
    pub step: usize,
    pub actor: String,
    pub operation: String,
    /// The answer the token chose.
    pub token: String,
    /// The answer reality gave, which the model also allows.
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
    /// Where reality chose another allowed answer than the token's, in step order.
    pub steered: Vec<Steer>,
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
    let Lockstep {
        divergence,
        steered,
    } = lockstep(prog, sched, &mut real)?;
    let trace = trace_of(&real);
    let out = Forced {
        broken: real.broken().to_vec(),
        end: real.end(),
        trace,
        divergence,
        steered,
        env: FsRun { fs: env, mode },
    };
    // Workers first (they hold files open under the run directory), then the directory.
    drop(real);
    run_dir
        .close()
        .map_err(|e| infra(format!("cannot remove the run directory: {e}")))?;
    Ok(out)
}

/// What running a schedule in lockstep showed: the first divergence, and the steps where reality
/// chose another answer the model allows.
#[derive(Debug, Default)]
pub(crate) struct Lockstep {
    pub divergence: Option<Divergence>,
    pub steered: Vec<Steer>,
}

/// Runs `sched` on `real` (any world: real actors on a real directory, real database
/// connections, ...) and on a fresh model in lockstep, and returns the first step whose real
/// result differed from the model's. `real` keeps its state (trace, broken invariants) for the
/// caller. Infrastructure failures and interruptions are errors, not divergences.
///
/// Where the model allows more than one answer to a step (an NFS client reading a removed
/// file through a cached name), reality decides, not the token: the model takes the answer
/// reality gave when it is one it allows (a [`Steer`] when it is not the token's), skips the
/// token's digits for that choice, and the replay goes on from there.
pub(crate) fn lockstep<F: World>(
    prog: &Arc<Program>,
    sched: &Schedule,
    real: &mut Machine<F>,
) -> Result<Lockstep, ForcedError> {
    sched.check_fits(prog)?;
    let infra = ForcedError::Infrastructure;
    real.record_details();
    let mut model = Machine::new(Arc::clone(prog));
    model.record_details();
    let mut out = Lockstep::default();
    let mut i = 0;
    while i < sched.steps.len() {
        if let Some(sig) = super::cancel::requested() {
            return Err(ForcedError::Interrupted(sig));
        }
        let c = sched.steps[i] as usize;
        if c >= model.choice_count() || !model.is_runnable(c) {
            if !out.steered.is_empty() {
                // Reality took the replay elsewhere at an allowed choice: the rest of the token
                // was recorded for another path, and the replay ends here (no divergence: the
                // model allows what reality did).
                break;
            }
            return Err(TokenError::Diverged {
                step: i + 1,
                actor: c,
                why: "is not runnable on the model".into(),
            }
            .into());
        }
        if !real.is_runnable(c) {
            out.divergence = Some(Divergence {
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
        let real_outcome = real.last_outcome().map(comparable);
        if let Some(answers) = model.answers_being_chosen() {
            let answers: Vec<StepOutcome> = answers.iter().map(outcome_of).collect();
            let digits = (usize::BITS - (answers.len() - 1).leading_zeros()) as usize;
            let recorded = &sched.steps[(i + 1).min(sched.steps.len())..];
            let recorded = &recorded[..digits.min(recorded.len())];
            let Some(k) = answers
                .iter()
                .position(|a| Some(comparable(a)) == real_outcome)
            else {
                out.divergence = Some(Divergence {
                    step: i + 1,
                    actor: name_of(prog, c),
                    operation: operation_of(prog, real),
                    model: answers
                        .iter()
                        .map(describe)
                        .collect::<Vec<_>>()
                        .join(" or "),
                    real: real_outcome.map_or("nothing".into(), |o| describe(&o)),
                });
                break;
            };
            let token_choice = token_answer(&model, recorded).filter(|_| recorded.len() == digits);
            model.choose_answer(k);
            if token_choice != Some(k) {
                out.steered.push(Steer {
                    step: i + 1,
                    actor: name_of(prog, c),
                    operation: operation_of(prog, real),
                    token: token_choice
                        .and_then(|t| answers.get(t))
                        .map_or("(no choice recorded)".into(), describe),
                    real: describe(&answers[k]),
                });
            }
            // The token's digits for this choice are spent, whichever answer was taken.
            i += 1 + if token_choice.is_some() { digits } else { 0 };
            continue;
        }
        let m = model.last_outcome().map(comparable);
        if m != real_outcome {
            out.divergence = Some(Divergence {
                step: i + 1,
                actor: name_of(prog, c),
                operation: operation_of(prog, real),
                model: m.map_or("nothing".into(), |o| describe(&o)),
                real: real_outcome.map_or("nothing".into(), |o| describe(&o)),
            });
            break;
        }
        i += 1;
    }
    Ok(out)
}

/// The answer index the token's recorded digits choose, when they are digits of this choice.
fn token_answer<F: World>(model: &Machine<F>, digits: &[u8]) -> Option<usize> {
    let actor = model.deciding_actor()?;
    let decision = model.decision_choice()?;
    digits.iter().try_fold(0usize, |acc, &d| match d as usize {
        x if x == actor => Some(acc << 1),
        x if x == decision => Some(acc << 1 | 1),
        _ => None,
    })
}

/// The operation of the real machine's last step, as the step table names it.
fn operation_of<F: World>(prog: &Program, real: &Machine<F>) -> String {
    real.details()
        .last()
        .map(|d| match d.what {
            racelab_core::model::StepWhat::Op(l) => prog.labels[l as usize].text.clone(),
            racelab_core::model::StepWhat::Fault(f) => format!("fault {}", prog.faults[f].name),
        })
        .unwrap_or_default()
}

fn outcome_of(answer: &Result<Value, racelab_lang::ir::Errno>) -> StepOutcome {
    match answer {
        Ok(v) => StepOutcome::Value(v.clone()),
        Err(e) => StepOutcome::Error(*e),
    }
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
