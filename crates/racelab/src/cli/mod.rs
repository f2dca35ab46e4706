//! The `racelab` command line: one module per command, each with its clap `Args` struct and a
//! `run` that answers with the exit code (DESIGN.md: 0 met, 1 an expectation failed, 2 bad
//! input, 3 infrastructure); [`output`] and [`load`] are what they share.

pub(crate) mod check;
pub(crate) mod explore;
pub(crate) mod fmt;
pub(crate) mod forced;
pub(crate) mod gate;
pub(crate) mod internal;
pub(crate) mod load;
pub(crate) mod lockbench;
pub(crate) mod merge;
pub(crate) mod new;
pub(crate) mod output;
pub(crate) mod replay;
pub(crate) mod stress;
pub(crate) mod suite;
pub(crate) mod world;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "racelab",
    version,
    about = "Find, print and replay races described as scenarios"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Check scenario files for errors without running them.
    Check(check::CheckArgs),
    /// Explore a scenario's interleavings until an invariant breaks or the budget runs out.
    Explore(explore::ExploreArgs),
    /// Replay a recorded schedule and print its step table.
    Replay(replay::ReplayArgs),
    /// Run a variant many times with free-running real actors and measure how often each invariant breaks.
    Stress(stress::StressArgs),
    /// (internal) Starts a program under racelab's gate: traced, with its seccomp filter.
    #[command(name = "__gate-exec", hide = true)]
    GateExec(internal::GateExecArgs),
    /// (internal) The gate benchmark's program: `calls` file-system calls (stat and utime, by
    /// turns) on FILE, then exit.
    #[command(name = "__gate-bench", hide = true)]
    GateBench(internal::GateBenchArgs),
    /// (internal) One locker of racelab-linklock.race with the real LinkLock, run under the gate.
    #[command(name = "__gate-linklock", hide = true)]
    GateLinkLock(internal::GateLinkLockArgs),
    /// (internal) A worker process performing one actor's operations for a real backend.
    #[command(name = "__worker", hide = true)]
    Worker(internal::WorkerArgs),
    /// (internal) One lock owner of a contention run (benchmarks, the flufl.lock interop test):
    /// prints a JSON report (racelab_locks::worker::Report).
    #[command(name = "__lockbench", hide = true)]
    LockBench(lockbench::LockBenchArgs),
    /// Run PostgreSQL isolation specs (*.spec) on a real PostgreSQL server and compare the
    /// output with their expected files, as PostgreSQL's isolationtester does (docs/isolation.md).
    Isolation(racelab_real::pgspec::cli::Args),
    /// Run every scenario × variant × engine and write summary.json, summary.md, summary.html, junit.xml.
    Suite(suite::SuiteArgs),
    /// Format scenario files (*.race) in place: indentation by brackets, canonical spaces,
    /// comments and line breaks kept, the tokens (and so replay tokens) unchanged.
    Fmt(fmt::FmtArgs),
    /// Write NAME.race: a commented starting scenario (two actors, a lock file, an invariant,
    /// a variant that breaks it and one that holds) that checks and explores as it is.
    New(new::NewArgs),
    /// Combine the summary.json files of every shard of a sharded suite into one summary (and
    /// its Markdown, HTML and JUnit XML).
    Merge(merge::MergeArgs),
}
