//! The scenario language with the model's check of database setups: everything of
//! `racelab_lang`, and [`compile`], [`compile_with`] and [`compile_with_loader`], which run each
//! `database` block's setup on a fresh model database while lowering (the language crate cannot:
//! the database model is here).

use std::collections::BTreeMap;
use std::sync::Arc;

pub use racelab_lang::*;

use crate::model::db::{Db, Flavour, Prepared};

/// Runs the setup statements on a fresh model database (the machine runs them again for each
/// execution, `Db::initial`, and relies on this check having passed).
fn model_setup(flavour: Flavour, setup: &[Arc<Prepared>]) -> Result<(), String> {
    Db::new(flavour, setup).map(drop)
}

/// Parses and checks `src` (named `file` in diagnostics); every problem is reported at once.
/// Parameters take the low end of their range.
pub fn compile(file: &str, src: &str) -> Result<Scenario, ScenarioErrors> {
    compile_with(file, src, &BTreeMap::new())
}

/// [`compile`] with values for some of the scenario's `param`s (from an exploration's draw, or
/// a replay token). A value for a parameter the scenario does not declare is an error.
/// Imported libraries are read from the filesystem, relative to `file`.
pub fn compile_with(
    file: &str,
    src: &str,
    params: &BTreeMap<String, i64>,
) -> Result<Scenario, ScenarioErrors> {
    compile_with_loader(file, src, params, &FsLoader)
}

/// [`compile_with`], reading imported libraries through `loader`.
pub fn compile_with_loader(
    file: &str,
    src: &str,
    params: &BTreeMap<String, i64>,
    loader: &dyn Loader,
) -> Result<Scenario, ScenarioErrors> {
    racelab_lang::compile_with_loader(file, src, params, loader, &model_setup)
}
