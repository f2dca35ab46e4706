//! PostgreSQL's isolation test suite under racelab: `*.spec` files (isolationtester's format)
//! parsed with racelab's diagnostics ([`parse`]), their permutations run on a real PostgreSQL
//! server the way isolationtester runs them ([`run`], over the small libpq-like client in
//! [`wire`]), the output printed in isolationtester's format ([`output`]) and compared with the
//! expected files ([`suite`], [`diff`]); [`cli`] is `racelab isolation`. [`explore`] runs the
//! interleavings a spec does not list and reports the outcomes no listed permutation gave.
//!
//! The model side ([`model`]) plugs in through [`run::Link`] and [`run::Watch`]: a session that
//! takes SQL, reports whether its result is ready and whether it waits for a lock.

pub mod cli;
pub(crate) mod diff;
pub mod explore;
pub mod explore_cli;
pub mod model;
pub(crate) mod output;
pub mod parse;
pub mod run;
pub mod suite;
pub(crate) mod wire;

use std::path::Path;

pub(crate) use parse::Spec;
use racelab_core::lang::diag::ScenarioErrors;

/// Why a spec could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    Io(String),
    /// Every problem in the file, rendered by miette with file:line:col and a caret.
    Syntax(ScenarioErrors),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Io(e) => f.write_str(e),
            LoadError::Syntax(e) => write!(
                f,
                "{e}: {}",
                e.diags
                    .iter()
                    .map(|d| d.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        }
    }
}

/// Reads and checks a spec file.
pub fn load(path: &Path) -> Result<Spec, LoadError> {
    let bytes = std::fs::read(path)
        .map_err(|e| LoadError::Io(format!("cannot read {}: {e}", path.display())))?;
    let name = path.display().to_string();
    let src = racelab_core::lang::decode_source(&name, bytes).map_err(LoadError::Syntax)?;
    parse_named(&name, &src)
}

/// Parses spec text; `name` is what diagnostics call the file.
pub fn parse_named(name: &str, src: &str) -> Result<Spec, LoadError> {
    parse::parse(src).map_err(|diags| LoadError::Syntax(ScenarioErrors::new(name, src, diags)))
}
