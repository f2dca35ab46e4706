//! racelab's typed errors: a documented kind that decides the exit code in one place, and a message that says what went wrong and what to do.
//!
//! Architecture invariant: a command's exit code comes from [`ErrorKind::exit_code`] (or from
//! the rows' verdicts), never from the words of a message. Scenario diagnostics stay miette
//! reports (`lang::ScenarioErrors`); they are [`ErrorKind::BadInput`] when they end a command.

use std::fmt;

use crate::schedule::TokenError;

/// What kind of failure an [`Error`] is; new kinds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input is wrong: a scenario, a flag, a path that is not there. Exit 2.
    BadInput,
    /// A replay token that does not fit: another scenario or variant, an edited scenario, a
    /// model token given to the gate, a mangled paste. Exit 2.
    Token,
    /// What the run needs could not be had: a backend, a server, a process, a directory.
    /// Exit 3.
    Infrastructure,
    /// racelab cannot do this by design, and says what to do instead (a gated program that
    /// starts a child process). Exit 3.
    Refused,
    /// The program under test says it cannot run here (a pinned release the registries here
    /// cannot build): a skipped row with the reason, never a pass. Exit 3 when it ends a
    /// command.
    Skipped,
    /// A run did not meet its expectation. Exit 1.
    Expectation,
}

impl ErrorKind {
    /// The exit code of a command this error ends (DESIGN.md: 1 an expectation failed, 2 bad
    /// input, 3 infrastructure).
    pub const fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Expectation => 1,
            ErrorKind::BadInput | ErrorKind::Token => 2,
            ErrorKind::Infrastructure | ErrorKind::Refused | ErrorKind::Skipped => 3,
        }
    }
}

/// The exit codes as constants, for commands that print their error where it happens and end
/// with its code; each is its kind's [`ErrorKind::exit_code`], so the mapping stays here.
pub mod exit {
    use super::ErrorKind;

    /// An expectation failed (a row not met).
    pub const EXPECTATION_FAILED: u8 = ErrorKind::Expectation.exit_code();
    pub const BAD_INPUT: u8 = ErrorKind::BadInput.exit_code();
    pub const INFRASTRUCTURE: u8 = ErrorKind::Infrastructure.exit_code();
}

/// A failure with its kind and a message for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }
    pub fn bad_input(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::BadInput, message)
    }
    pub fn infrastructure(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Infrastructure, message)
    }
    pub fn refused(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Refused, message)
    }
    pub fn skipped(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Skipped, message)
    }
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    pub fn exit_code(&self) -> u8 {
        self.kind.exit_code()
    }
    /// The same error, its message after `what: ` (where it happened).
    pub fn context(self, what: impl fmt::Display) -> Error {
        Error {
            kind: self.kind,
            message: format!("{what}: {}", self.message),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<TokenError> for Error {
    fn from(e: TokenError) -> Error {
        Error::new(ErrorKind::Token, e.to_string())
    }
}

/// A bare message is an infrastructure failure: the untyped errors of the real world (a
/// system call, a server) that reach a typed interface.
impl From<String> for Error {
    fn from(message: String) -> Error {
        Error::infrastructure(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Error {
        Error::infrastructure(message)
    }
}

/// Back to a message, for the parts of racelab that still pass errors as text.
impl From<Error> for String {
    fn from(e: Error) -> String {
        e.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_the_exit_code_design_md_gives_it() {
        assert_eq!(Error::bad_input("x").exit_code(), 2);
        assert_eq!(Error::from(TokenError::Corrupted).exit_code(), 2);
        assert_eq!(Error::infrastructure("x").exit_code(), 3);
        assert_eq!(Error::refused("x").exit_code(), 3);
        assert_eq!(Error::skipped("x").exit_code(), 3);
        assert_eq!(Error::new(ErrorKind::Expectation, "x").exit_code(), 1);
        let e = Error::skipped("not installable").context("conda 4.3.16");
        assert_eq!(e.kind(), ErrorKind::Skipped);
        assert_eq!(e.to_string(), "conda 4.3.16: not installable");
    }
}
