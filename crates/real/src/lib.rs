//! racelab-real: the real world a scenario runs against: real filesystems, processes, threads
//! and databases ([`backend`]), the ptrace gate that steps real programs ([`gate`]), PostgreSQL
//! isolation specs ([`pgspec`], whole: its parser, model and CLI are one unit), and the suite's
//! result rows for the model and every real backend ([`suite`]; the gate's rows share them).
//!
//! # The public API
//!
//! What the `racelab` command, the benchmarks and the integration tests call:
//! - [`backend`]: `BackendSpec`, `ActorMode` and `db::DbSpec` (parsed from `--backend` and
//!   `--actors`), `stress::stress` and `db::stress::stress`, `forced::forced_replay`,
//!   `process::ProcessExecutor`, `RealFs`, `cancel`, `fsinfo`;
//! - [`gate`]: `launch::gate_exec`, `explore::{explore, replay}`, `report::{explore_row,
//!   suite_rows}`, `syscalls`;
//! - [`pgspec`]: `cli::main` (`racelab isolation`), the spec parser, `suite`'s cases and
//!   databases, `explore_cli` (a spec's interleavings on the server and on the model);
//! - [`suite`]: the rows of every backend (`result_row`, `real_rows`, `db_rows`, …) and `run`.
//!
//! Their fallible entry points return `racelab_core::error::Error`, whose kind (bad input,
//! refused, infrastructure, …) decides the exit code; the `World` traits' `String` errors stay
//! inside. Everything else is `pub(crate)` (`#![warn(unreachable_pub)]` keeps it so).

// The API is what the crate root exports; anything else `pub` is a warning (CI denies warnings).
#![warn(unreachable_pub)]

pub mod backend;
pub mod gate;
pub mod pgspec;
pub mod suite;
