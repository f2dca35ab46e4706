//! `racelab check FILES...`: compiles scenario files (and PostgreSQL isolation specs) without
//! running them, printing diagnostics or a one-line summary per file.

use std::path::{Path, PathBuf};

use super::load::load;
use super::output::{eprint_error, eprint_scenario_errors, Output, BAD_INPUT};

#[derive(clap::Args)]
pub(crate) struct CheckArgs {
    /// Scenario files (*.race), or PostgreSQL isolation specs (*.spec).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Checks every file; the exit code is the last failing file's (2), else 0.
pub(crate) fn run(args: &CheckArgs, out: &Output) -> u8 {
    let mut code = 0;
    for f in &args.files {
        if f.extension().is_some_and(|x| x == "spec") {
            match check_spec(f, out) {
                Ok(line) => println!("{line}"),
                Err(c) => code = c,
            }
            continue;
        }
        match load(f, out) {
            Ok(sc) => println!(
                "{}: ok ({} variant{}: {})",
                f.display(),
                sc.variants.len(),
                if sc.variants.len() == 1 { "" } else { "s" },
                sc.variant_names().join(", ")
            ),
            Err(c) => code = c,
        }
    }
    code
}

/// `racelab check FILE.spec`: a PostgreSQL isolation spec, with the same diagnostics.
fn check_spec(path: &Path, out: &Output) -> Result<String, u8> {
    match racelab_real::pgspec::load(path) {
        Ok(spec) => Ok(format!(
            "{}: ok (isolation spec: {} sessions, {} permutations)",
            path.display(),
            spec.sessions.len(),
            spec.permutation_count()
        )),
        Err(racelab_real::pgspec::LoadError::Syntax(errors)) => {
            eprint_scenario_errors(&errors, out);
            Err(BAD_INPUT)
        }
        Err(e) => {
            eprint_error(e);
            Err(BAD_INPUT)
        }
    }
}
