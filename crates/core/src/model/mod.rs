//! The model world: an in-memory POSIX filesystem and the interpreter that runs actors over it.
//!
//! Architecture invariant: no I/O here. Real backends implement [`world::World`] elsewhere.

pub mod cow;
pub mod db;
pub mod fds;
pub mod fingerprint;
pub mod fs;
pub mod locks;
pub mod machine;
pub mod world;

pub use machine::{
    Broken, End, Machine, Resource, Status, StepDetail, StepOutcome, StepWhat, EPOCH_MS,
};
