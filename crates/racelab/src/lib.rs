//! racelab: write a reported race down as a scenario, explore its interleavings with shuttle and
//! loom, print the failing one as a step table with a replay token, and replay it.
//!
//! The pipeline: [`lang::compile`] turns a `*.race` file into one [`ir::Program`] per variant;
//! [`model::Machine`] runs a program as a step function; [`explore`] drives machines under
//! shuttle's schedulers and loom; [`schedule`] encodes what happened as a portable token; and
//! [`replay`] reproduces it.
//!
//! A project's own tests use the narrow API at the crate root ([`check`], [`Scenario`],
//! [`Engine`], [`Verdict`]): see [`api`].

pub mod api;
pub mod backend;
pub mod collections;
pub mod coverage;
pub mod error;
pub mod eval;
pub mod explore;
pub mod gate;
pub mod ir;
pub mod lang;
pub mod lockfile;
pub mod model;
pub mod params;
pub mod pgspec;
pub mod replay;
mod rng;
pub mod schedule;
pub mod shard;
pub mod shrink;
pub mod starter;
pub mod suite;

pub use api::{check, Engine, Error, Replay, Scenario, Verdict};
