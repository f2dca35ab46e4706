//! Isolation specs on the model database (PostgreSQL flavour) instead of a server: a
//! [`ModelServer`] holds one [`Db`] and plays the server for the spec's sessions
//! ([`ModelSession`], a [`Link`]) and its control connection ([`ModelControl`], a [`Watch`]).
//!
//! A step's text is split into statements and each is checked against the model's subset
//! before anything runs ([`check_spec`]): a spec with one statement outside it is not run, and
//! the reason names the first construct the model lacks. A statement the model reports
//! `Blocked` stays queued on its session and is retried, first-come first-served like
//! PostgreSQL's lock queue, whenever another statement finishes; so "is the session waiting for
//! a lock" is answered by the model itself, with no timing at all.

/// The connection number setup and teardown run on (sessions are 0, 1, …).
const CONTROL: usize = 1_000_000;
/// Session `i` reports pid `PID_BASE + i`, as a server reports backend pids.
const PID_BASE: i32 = 10_000;

mod server;
mod session;
mod translate;

pub use self::session::{ModelControl, ModelSession};
pub use self::translate::{check_spec, split_statements, unsupported_statements};
