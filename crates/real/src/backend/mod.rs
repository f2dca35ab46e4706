//! Real backends: the scenario's world on real filesystems, with actors as real threads or processes.
//!
//! The interpreter stays one deterministic [`Machine`](racelab_core::model::Machine); what becomes real
//! is what the actors *do*. [`ActorFs`] is a [`World`] whose every operation is performed by
//! the actor that takes the step — in that actor's own thread, or its own worker process (the
//! racelab binary re-executed) — on a [`RealFs`] confined to a root directory. Faults become
//! real too: SIGKILL, the signal itself (caught by a real handler only if the scenario installed
//! one), SIGSTOP/SIGCONT.
//!
//! This module does I/O; the core (`lang`, `ir`, `model`, `explore`) does not, and knows real
//! backends only through the `World` traits (`model::world`).

pub mod cancel;
pub mod db;
pub mod forced;
pub mod fsinfo;
pub mod nemesis;
pub mod process;
pub(crate) mod realfs;
pub mod stress;
pub(crate) mod threads;
pub(crate) mod wire;

use std::path::PathBuf;

use racelab_core::error::Error;
use racelab_core::model::world::{OpCtx, Signals, Sql, World};
use racelab_lang::ir::{Errno, FaultKind, Op, Signal, Value};
pub use realfs::RealFs;

/// Where a scenario runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendSpec {
    /// The in-memory model world.
    Model,
    /// A real directory, on whatever filesystem holds it; several when they are mounts of one
    /// export through different NFS clients (`fs:/mnt/a,/mnt/b`: the same files, two caches).
    Fs(Vec<PathBuf>),
}

impl BackendSpec {
    /// Parses `model` or `fs:DIR`; anything else is bad input.
    pub fn parse(s: &str) -> Result<BackendSpec, Error> {
        match s {
            "model" => Ok(BackendSpec::Model),
            _ => match s.strip_prefix("fs:") {
                Some("") => Err(Error::bad_input("`fs:` needs a directory: `--backend fs:/tmp/race`")),
                Some(dirs) => Ok(BackendSpec::Fs(dirs.split(',').map(PathBuf::from).collect())),
                None => Err(Error::bad_input(format!("unknown backend `{s}`; backends: `model`, `fs:DIR` (a real directory on any filesystem)"))),
            },
        }
    }
}

/// How real actors run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorMode {
    /// One OS thread per actor, in this process. Faults are emulated: a thread cannot be
    /// SIGKILLed alone.
    Threads,
    /// One worker process per actor (the racelab binary re-executed), in its own process group,
    /// killed with its parent. Faults are real signals.
    Processes,
}

impl ActorMode {
    /// Parses `threads` or `processes`; anything else is bad input.
    pub fn parse(s: &str) -> Result<ActorMode, Error> {
        match s {
            "threads" => Ok(ActorMode::Threads),
            "processes" => Ok(ActorMode::Processes),
            _ => Err(Error::bad_input(format!(
                "unknown actor mode `{s}`; use `threads` or `processes`"
            ))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            ActorMode::Threads => "threads",
            ActorMode::Processes => "processes",
        }
    }
}

/// Performs the actors' operations on real threads or processes.
pub trait Executor: Send {
    /// Actor `actor` performs `op` now, in its own thread or process.
    fn perform(
        &mut self,
        actor: usize,
        op: Op,
        args: &[Value],
        now: i64,
    ) -> Result<Result<Value, Errno>, String>;
    /// Makes a fault real. `handled`: the actor has a handler installed for the signal.
    fn fault(&mut self, actor: usize, fault: &FaultKind, handled: bool) -> Result<(), String>;
    /// The actor installed or removed a signal handler.
    fn handler(&mut self, actor: usize, signal: Signal, installed: bool) -> Result<(), String>;
}

/// A [`World`] whose operations the stepping actor performs itself, for real.
pub(crate) struct ActorFs {
    exec: Box<dyn Executor>,
    /// The harness's own view of the root, for invariants (observing is not a step).
    observer: RealFs,
}

impl ActorFs {
    pub(crate) fn new(exec: Box<dyn Executor>, observer: RealFs) -> ActorFs {
        ActorFs { exec, observer }
    }
}

impl World for ActorFs {
    fn perform(
        &mut self,
        op: Op,
        args: &[Value],
        cx: &OpCtx,
    ) -> Result<Result<Value, Errno>, String> {
        self.exec.perform(cx.actor, op, args, cx.now)
    }

    fn observe_exists(&self, path: &str) -> bool {
        self.observer.observe_exists(path)
    }

    fn observe_contents(&self, path: &str) -> Option<String> {
        self.observer.observe_contents(path)
    }
}

impl Signals for ActorFs {
    fn fault(&mut self, actor: usize, fault: &FaultKind, handled: bool) -> Result<(), String> {
        self.exec.fault(actor, fault, handled)
    }

    fn handler(&mut self, actor: usize, signal: Signal, installed: bool) -> Result<(), String> {
        self.exec.handler(actor, signal, installed)
    }
}

impl Sql for ActorFs {}

/// Starts the executor for `mode` with `actors` actors working in `root`.
/// Starts the executor for `mode`: actor `i` works in `roots[i]` (its client's view of the run
/// directory).
pub(crate) fn start(mode: ActorMode, roots: &[PathBuf]) -> Result<Box<dyn Executor>, String> {
    Ok(match mode {
        ActorMode::Threads => Box::new(threads::ThreadExecutor::start(roots)?),
        ActorMode::Processes => Box::new(process::ProcessExecutor::start(roots)?),
    })
}

/// Each actor's view of a run directory named `run` that exists in every one of `clients`
/// (several mounts of one export: NFS clients A, B, …). Actors go to the client the scenario
/// puts them on; a scenario that names no clients spreads its actors over the mounts in turn,
/// so that a single-client race can also be run across clients.
pub(crate) fn actor_roots(
    prog: &racelab_lang::ir::Program,
    clients: &[PathBuf],
    run: &std::ffi::OsStr,
) -> Vec<PathBuf> {
    let n = clients.len().max(1);
    prog.actors
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let c = if prog.clients.len() > 1 {
                a.client as usize % n
            } else {
                i % n
            };
            clients.get(c).unwrap_or(&clients[0]).join(run)
        })
        .collect()
}
