//! The real world a forced replay or a stress run happens in: a real filesystem (directories,
//! actors as threads or processes) or a real database (one connection per actor). The commands
//! have one path each; this module is where it forks, and where the two worlds' words differ.

use std::path::PathBuf;
use std::sync::Arc;

use racelab_core::schedule::Schedule;
use racelab_lang::ir::Program;
use racelab_real::backend::db::forced::DbReplayer;
use racelab_real::backend::db::DbSpec;
use racelab_real::backend::forced::{Divergence, ForcedError};
use racelab_real::backend::ActorMode;

/// A real filesystem or a real database.
pub(crate) enum RealWorld {
    /// `fs:DIR[,DIR2...]`: fresh directories under the roots, actors as `mode`.
    Fs {
        roots: Vec<PathBuf>,
        mode: ActorMode,
    },
    /// `db:sqlite|postgres[=URL]|mariadb[=URL]`.
    Db(DbSpec),
}

/// One forced replay's outcome, whichever world it ran in.
pub(crate) struct ForcedRun {
    pub trace: reports::Trace,
    pub divergence: Option<Divergence>,
    pub reproduced: bool,
    /// The line that says where the replay ran (printed after the first run's step table).
    pub backend_line: String,
}

impl RealWorld {
    /// What the messages call the world: "the real system" or "the real database".
    pub(crate) fn noun(&self) -> &'static str {
        match self {
            RealWorld::Fs { .. } => "system",
            RealWorld::Db(_) => "database",
        }
    }

    /// What failed when the world did: "the real backend" or "the real database".
    pub(crate) fn failing_part(&self) -> &'static str {
        match self {
            RealWorld::Fs { .. } => "backend",
            RealWorld::Db(_) => "database",
        }
    }

    /// What forces schedules in this world, one after another: the database world keeps one
    /// database for a token's replays, reset between them (`DbReplayer`).
    pub(crate) fn forcer(&self) -> Forcer<'_> {
        match self {
            RealWorld::Fs { roots, mode } => Forcer::Fs { roots, mode: *mode },
            RealWorld::Db(db) => Forcer::Db(DbReplayer::new(db)),
        }
    }
}

/// Forces schedules in one [`RealWorld`], each on fresh real state (a fresh directory; the
/// database reset to the scenario's initial state).
pub(crate) enum Forcer<'w> {
    Fs {
        roots: &'w [PathBuf],
        mode: ActorMode,
    },
    Db(DbReplayer),
}

impl Forcer<'_> {
    /// Forces `sched` once.
    pub(crate) fn force(
        &mut self,
        prog: &Arc<Program>,
        sched: &Schedule,
    ) -> Result<ForcedRun, ForcedError> {
        match self {
            Forcer::Fs { roots, mode } => {
                let r = racelab_real::backend::forced::forced_replay(prog, sched, roots, *mode)?;
                let dirs: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
                let backend_line = format!(
                    "backend: {} ({}, mounted at {}, options {}), actors as {}",
                    dirs.join(", "),
                    r.env.fs.fs_type,
                    r.env.fs.mount_point,
                    r.env.fs.options,
                    mode.name()
                );
                Ok(ForcedRun {
                    reproduced: r.reproduced(sched),
                    trace: r.trace,
                    divergence: r.divergence,
                    backend_line,
                })
            }
            Forcer::Db(replayer) => {
                let r = replayer.replay(prog, sched)?;
                let backend_line = format!(
                    "backend: {} ({}, isolation {}), one connection per actor",
                    r.env.backend, r.env.server_version, r.env.isolation_level
                );
                Ok(ForcedRun {
                    reproduced: r.reproduced(sched),
                    trace: r.trace,
                    divergence: r.divergence,
                    backend_line,
                })
            }
        }
    }
}
