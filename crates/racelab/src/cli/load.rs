//! Reading scenario files for the commands: compile, pick variants, name engines, printing what
//! went wrong (diagnostics, or the variants that exist) and answering with the exit code.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use racelab_core::explore::EngineKind;
use racelab_core::lang::{self, Scenario};
use racelab_lang::ir::Program;

use super::output::{eprint_error, eprint_scenario_errors, Output, BAD_INPUT};

/// Reads and compiles a scenario file and picks one variant, printing what went wrong.
pub(crate) fn load_variant(file: &Path, variant: &str, out: &Output) -> Result<Arc<Program>, u8> {
    load_variant_with(file, variant, &Default::default(), out)
}

/// [`load_variant`] with values for the scenario's parameters (a replay token's).
pub(crate) fn load_variant_with(
    file: &Path,
    variant: &str,
    params: &BTreeMap<String, i64>,
    out: &Output,
) -> Result<Arc<Program>, u8> {
    let sc = load_with(file, params, out)?;
    pick_variants(&sc, Some(variant), file).map(|p| Arc::new(p[0].clone()))
}

/// Reads and compiles a scenario file, printing diagnostics on failure.
pub(crate) fn load(path: &Path, out: &Output) -> Result<Scenario, u8> {
    load_with(path, &Default::default(), out)
}

/// [`load`] with values for the scenario's parameters.
pub(crate) fn load_with(
    path: &Path,
    params: &BTreeMap<String, i64>,
    out: &Output,
) -> Result<Scenario, u8> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprint_error(format_args!("cannot read {}: {e}", path.display()));
            return Err(BAD_INPUT);
        }
    };
    let name = path.display().to_string();
    let compiled =
        lang::decode_source(&name, bytes).and_then(|src| lang::compile_with(&name, &src, params));
    compiled.map_err(|errors| {
        eprint_scenario_errors(&errors, out);
        BAD_INPUT
    })
}

/// The named variant, or every variant when none is named.
pub(crate) fn pick_variants<'s>(
    sc: &'s Scenario,
    variant: Option<&str>,
    file: &Path,
) -> Result<Vec<&'s Program>, u8> {
    match variant {
        None => Ok(sc.variants.iter().collect()),
        Some(v) => match sc.variant(v) {
            Some(p) => Ok(vec![p]),
            None => {
                eprint_error(format_args!(
                    "{} has no variant `{v}`; its variants are: {}",
                    file.display(),
                    sc.variant_names().join(", ")
                ));
                Err(BAD_INPUT)
            }
        },
    }
}

/// A scenario's name in reports: its file name without `.race`.
pub(crate) fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Engine names from the command line; none, or `all`, means every model engine.
pub(crate) fn parse_engines(spec: &[String]) -> Result<Vec<EngineKind>, String> {
    if spec.is_empty() || spec.iter().any(|s| s == "all") {
        return Ok(EngineKind::ALL.to_vec());
    }
    spec.iter()
        .map(|s| {
            EngineKind::from_name(s).ok_or_else(|| {
                let names: Vec<_> = EngineKind::ALL.iter().map(|e| e.name()).collect();
                format!(
                    "unknown engine `{s}`; choose from {} or all",
                    names.join(", ")
                )
            })
        })
        .collect()
}
