//! One execution of a scenario's real program under the gate: start a process per actor, let
//! one gated call happen per step as a [`Chooser`] decides, land faults, keep the discrete-event
//! clock, and check the scenario's invariants against the real files after every step.
//!
//! The choices are the model's: `c < actors` lets actor `c`'s pending call happen, `actors + f`
//! lands fault `f`. So a gate schedule is a portable schedule like any other, replayed by
//! following it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reports::TraceStep;

mod drive;
mod ends;
mod watchdog;
mod world;

pub use self::drive::execute;
/// The gate's choosers are the engines' ([`racelab_core::explore::chooser`]): the choices are
/// the enabled actors and faults (`last` says whether the previous step changed a file others
/// see), and an actor with two or more threads at gated calls asks
/// [`Chooser::next_thread`] for one more choice.
pub use racelab_core::explore::chooser::{Chooser, Last};

/// How gated runs are made.
#[derive(Debug, Clone)]
pub struct GateOptions {
    /// The racelab binary, re-executed as the launcher of each gated process.
    pub racelab: PathBuf,
    /// Where `$SCENARIO_DIR` points: the scenario file's directory.
    pub scenario_dir: PathBuf,
    /// The directory each run's root is made in (on the filesystem under test).
    pub base: PathBuf,
    /// The same directory as `base` seen through other clients (two NFS mounts of one export,
    /// each with its own attribute cache). Actor `i` runs on client `i % (1 + clients.len())`:
    /// the first on `base`, the next on `clients[0]`, and so on. The invariants read the files
    /// through `base`.
    pub clients: Vec<PathBuf>,
    /// A process that makes no gated call for this long (wall time) is hung: killed, reported.
    pub step_timeout: Duration,
    /// The step bound; beyond it the run is a livelock.
    pub max_steps: usize,
    /// Seeds the programs' random bytes (per actor): part of the schedule, so part of the token.
    pub seed: u64,
    /// Wake-ups fall on multiples of this (ns; 0: exact). Two processes whose sleeps end within
    /// one tick wake at the same instant, and the schedule orders them: the real-world analogue
    /// of the model's fixed NAP (docs/language.md, "The gate").
    pub tick_ns: u64,
    /// Put first on the gated programs' PATH: `$RACELAB_VENV/bin`, where `cargo xtask venv`
    /// installs the Python packages the built-in drivers import (flufl.lock).
    pub path_prefix: Option<PathBuf>,
    /// More environment for the gated programs (tests point `RACELAB_VENV` at their own).
    pub extra_env: Vec<(String, String)>,
    /// Trap every gated call with ptrace stops, as before seccomp user notification (the
    /// bench's `gate-ptrace` way; `RACELAB_GATE_PTRACE_ONLY` set in racelab's environment).
    /// Otherwise the calls in [`crate::gate::syscalls::NOTIFIED`] go through a listener when
    /// the kernel has one. Steps, results and tokens are the same either way.
    pub ptrace_only: bool,
}

impl GateOptions {
    pub fn new(scenario_file: &Path, base: &Path) -> Result<GateOptions, String> {
        let racelab = match std::env::var_os("RACELAB_BIN") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe().map_err(|e| {
                format!("cannot find the racelab binary to launch gated processes: {e}")
            })?,
        };
        let dir = scenario_file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let scenario_dir = dir
            .canonicalize()
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(GateOptions {
            racelab,
            scenario_dir,
            base: base.to_path_buf(),
            clients: Vec::new(),
            step_timeout: Duration::from_secs(20),
            max_steps: 5_000,
            seed: 1,
            tick_ns: 1_000_000_000,
            path_prefix: std::env::var_os("RACELAB_VENV").map(|v| PathBuf::from(v).join("bin")),
            extra_env: Vec::new(),
            ptrace_only: std::env::var_os(crate::gate::notify::PTRACE_ONLY_ENV).is_some(),
        })
    }
}

/// How a gated run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateEnd {
    /// Every process ended (or an invariant broke and the run stopped there).
    Finished,
    /// The chooser stopped it.
    Cut,
    Livelock,
}

/// One gated execution.
#[derive(Debug, Clone)]
pub struct Execution {
    pub choices: Vec<u8>,
    /// The positions in `choices` that pick a thread of the actor chosen just before (an
    /// actor with two or more threads at gated calls), not an actor.
    pub thread_choices: Vec<usize>,
    pub trace: Vec<TraceStep>,
    /// Invariants (and oracles) that broke, each the first time it did, in order. The run
    /// goes on after a break, as the model's does, so that one execution can show several.
    pub broken: Vec<Broken>,
    pub end: GateEnd,
    /// Virtual time at the end, in milliseconds since the run began.
    pub elapsed_ms: u64,
    /// How many steps came as seccomp notifications and were made by racelab (0 when every
    /// call went through ptrace): which mechanism ran, for tests and benches.
    pub notified_steps: usize,
}

/// An invariant that broke, why, and after how many choices (its schedule is that prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub invariant: String,
    pub message: String,
    pub steps: usize,
}

impl Execution {
    pub fn broke(&self, invariant: &str) -> bool {
        self.broken.iter().any(|b| b.invariant == invariant)
    }

    /// Context switches among the first `upto` choices: a choice of another actor (a process,
    /// or a fault) than the one before. A thread choice moves within one process, no switch.
    pub fn process_switches(&self, upto: usize) -> u32 {
        let actors: Vec<u8> = self
            .choices
            .iter()
            .take(upto)
            .enumerate()
            .filter(|(i, _)| !self.thread_choices.contains(i))
            .map(|(_, c)| *c)
            .collect();
        actors.windows(2).filter(|w| w[0] != w[1]).count() as u32
    }

    fn record(&mut self, invariant: &str, message: String) {
        if !self.broke(invariant) {
            self.broken.push(Broken {
                invariant: invariant.to_string(),
                message,
                steps: self.choices.len(),
            });
        }
    }

    /// The verdict line of a step table.
    pub fn verdict(&self) -> String {
        if self.broken.is_empty() {
            return "nothing broke".into();
        }
        self.broken
            .iter()
            .map(|b| b.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_choice_is_no_context_switch() {
        // Actor 0, its thread 1; actor 0, its thread 0; actor 1; actor 1; actor 0.
        let exec = Execution {
            choices: vec![0, 1, 0, 0, 1, 1, 0],
            thread_choices: vec![1, 3],
            trace: Vec::new(),
            broken: Vec::new(),
            end: GateEnd::Finished,
            elapsed_ms: 0,
            notified_steps: 0,
        };
        assert_eq!(exec.process_switches(7), 2);
        assert_eq!(exec.process_switches(4), 0);
        // Counted as plain actors, the same choices made four switches.
        assert_eq!(exec.choices.windows(2).filter(|w| w[0] != w[1]).count(), 4);
    }
}
