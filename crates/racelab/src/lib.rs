//! racelab: write a reported race down as a scenario, explore its interleavings with shuttle and
//! loom, print the failing one as a step table with a replay token, and replay it.
//!
//! This crate is the narrow public API a project's own tests call ([`check`], [`Scenario`],
//! [`Engine`], [`Verdict`]; see [`api`]) and the `racelab` command. The work is done by the
//! crates below it: `racelab-lang` (scenario files → IR), `racelab-core` (the model world, the
//! engines, schedules, replay; no I/O), `racelab-real` (real filesystems, processes, databases,
//! the gate, the suite's rows) and `racelab-locks` (the lock files).
//!
//! Besides [`api`], [`shard`] (`--shard I/N` and `racelab merge`) and [`starter`] (`racelab
//! new`'s scenario) are public for the command; their errors are `racelab_core::error::Error`.

// The API is what the crate root exports; anything else `pub` is a warning (CI denies warnings).
#![warn(unreachable_pub)]

pub mod api;
pub mod shard;
pub mod starter;

pub use api::{check, Engine, Error, Replay, Scenario, Verdict};
