//! racelab-real: the real world a scenario runs against: real filesystems, processes, threads
//! and databases ([`backend`]), the ptrace gate that steps real programs ([`gate`]), PostgreSQL
//! isolation specs ([`pgspec`], whole: its parser, model and CLI are one unit), and the suite's
//! result rows for the model and every real backend ([`suite`]; the gate's rows share them).

// The API is what the crate root exports; anything else `pub` is a warning (CI denies warnings).
#![warn(unreachable_pub)]

pub mod backend;
pub mod gate;
pub mod pgspec;
pub mod suite;
