//! The gate: unmodified programs (any language) as actors, their file-system calls in the order
//! a schedule says, their clock racelab's virtual clock.
//!
//! Mechanism (see ARCHITECTURE.md, "The gate"): each actor is started through
//! `racelab __gate-exec`, which asks to be traced, installs seccomp filters that stop the
//! calls listed in [`syscalls::TRAPPED`] (those in [`syscalls::NOTIFIED`] as user
//! notifications, which racelab answers or makes itself, the rest as ptrace stops: see
//! [`notify`]), and execs the program. racelab, the tracer, keeps every process held but one. A call on a file under the run's root is a *step*: it waits
//! until the schedule picks its process. Time calls are answered from the virtual clock (the
//! vDSO is hidden from the program, so its C library asks the kernel), sleeps end when the
//! discrete-event clock reaches them, and random bytes come from a per-actor seed, so that a
//! run depends on its schedule alone and replays.

pub mod explore;
pub mod launch;
pub mod notify;
pub mod report;
pub mod run;
pub mod syscalls;
pub(crate) mod tracee;

use racelab_core::model::machine::EPOCH_MS;

/// The exit status by which a gated program says it cannot run here (automake's and meson's
/// "skip" convention): a program that exits 77 before its first gated call has not run the
/// scenario, and its row is skipped, with the program's last lines of stderr as the reason. The
/// Python and Node drivers exit 77 when the pinned release they load is not installed (a
/// release the registries here cannot build); any other early exit is still an error.
pub const SKIP_STATUS: i32 = 77;

/// Virtual time as the gated processes see it: nanoseconds since the run began, shown as the
/// model's epoch on wall clocks and as a plausible uptime on monotonic ones.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct VirtualClock {
    now: u64,
}

/// The monotonic clocks' value at the start of a run: a machine up for a while.
const MONOTONIC_BASE_NS: u64 = 1_000 * 1_000_000_000;

impl VirtualClock {
    pub(crate) fn now_ns(&self) -> u64 {
        self.now
    }
    pub(crate) fn wall_ns(&self) -> u64 {
        EPOCH_MS as u64 * 1_000_000 + self.now
    }
    pub(crate) fn monotonic_ns(&self) -> u64 {
        MONOTONIC_BASE_NS + self.now
    }
    /// Milliseconds since the epoch, as the model's traces show time.
    pub(crate) fn wall_ms(&self) -> i64 {
        (self.wall_ns() / 1_000_000) as i64
    }
    pub(crate) fn advance_to(&mut self, ns: u64) {
        self.now = self.now.max(ns);
    }
}

/// Splits a `gate "..."` command into words and fills in `$ROOT`, `$ACTOR`, `$INDEX`,
/// `$SCENARIO_DIR` and `$RACELAB` (this racelab binary). Words are separated by spaces; there
/// is no quoting (a program that needs more gets a small wrapper script).
pub(crate) fn expand_command(
    command: &str,
    root: &std::path::Path,
    actor: &str,
    index: usize,
    scenario_dir: &std::path::Path,
    racelab: &std::path::Path,
) -> Vec<String> {
    command
        .split_whitespace()
        .map(|w| {
            w.replace("$SCENARIO_DIR", &scenario_dir.display().to_string())
                .replace("$RACELAB", &racelab.display().to_string())
                .replace("$ROOT", &root.display().to_string())
                .replace("$ACTOR", actor)
                .replace("$INDEX", &index.to_string())
        })
        .collect()
}
