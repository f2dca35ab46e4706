//! `racelab fmt [--check] FILES...`: formats `.race` files in place, or lists those that are not.

use std::io::Write;
use std::path::Path;

use racelab_core::lang::{self, fmt::FmtError, ScenarioErrors};

use super::output::{eprint_error, eprint_scenario_errors, Output, BAD_INPUT};

#[derive(clap::Args)]
pub(crate) struct FmtArgs {
    /// Change nothing: list the files that are not formatted (exit 1 if any).
    #[arg(long)]
    check: bool,
    /// Scenario or library files (*.race).
    #[arg(required = true)]
    files: Vec<std::path::PathBuf>,
}

/// Formats each file (in place, or only checks with `--check`). Exit code: 2 if any file cannot
/// be read or lexed, else 1 if `--check` found a file that is not formatted, else 0.
pub(crate) fn run(args: &FmtArgs, out: &Output) -> u8 {
    let (files, check) = (&args.files, args.check);
    let mut bad_input = false;
    let mut unformatted = 0usize;
    for path in files {
        match fmt_file(path, check, out) {
            Ok(true) => {}
            Ok(false) => unformatted += 1,
            Err(()) => bad_input = true,
        }
    }
    if bad_input {
        BAD_INPUT
    } else if check && unformatted > 0 {
        eprintln!(
            "{unformatted} file{} not formatted: run `racelab fmt` on {}",
            if unformatted == 1 { " is" } else { "s are" },
            if unformatted == 1 { "it" } else { "them" }
        );
        1
    } else {
        0
    }
}

/// Formats one file. `Ok(true)`: it was formatted already.
fn fmt_file(path: &Path, check: bool, out: &Output) -> Result<bool, ()> {
    let name = path.display().to_string();
    if path.extension().is_none_or(|x| x != "race") {
        // A `.spec` is SQL in isolationtester's format: re-spacing it as a scenario would break it.
        eprint_error(format_args!(
            "{name}: racelab fmt formats scenario files (*.race) only"
        ));
        return Err(());
    }
    let bytes =
        std::fs::read(path).map_err(|e| eprint_error(format_args!("cannot read {name}: {e}")))?;
    let src =
        lang::decode_source(&name, bytes).map_err(|errors| eprint_scenario_errors(&errors, out))?;
    let formatted = match lang::fmt::format(&src) {
        Ok(f) => f,
        Err(FmtError::Syntax(diags)) => {
            eprint_scenario_errors(&ScenarioErrors::new(&name, &src, diags), out);
            return Err(());
        }
        Err(FmtError::Changed { at }) => {
            let (line, col) = line_col(&src, at);
            eprint_error(format_args!(
                "{name}:{line}:{col}: racelab fmt would change the tokens here (a bug in the formatter); the file is left as it is"
            ));
            return Err(());
        }
    };
    if formatted == src {
        return Ok(true);
    }
    if check {
        let (line, old, new) = first_difference(&src, &formatted);
        println!("{name}:{line}: not formatted");
        println!("-{old}");
        println!("+{new}");
        return Ok(false);
    }
    write_atomically(path, &formatted)
        .map_err(|e| eprint_error(format_args!("cannot write {name}: {e}")))?;
    println!("{name}: formatted");
    Ok(false)
}

/// 1-based line and column (in characters) of byte `at` of `src`.
fn line_col(src: &str, at: usize) -> (usize, usize) {
    let before = &src[..at.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The first line (1-based) where `a` and `b` differ, and that line in each.
fn first_difference<'a>(a: &'a str, b: &'a str) -> (usize, &'a str, &'a str) {
    let (mut la, mut lb) = (a.split('\n'), b.split('\n'));
    let mut n = 1;
    loop {
        match (la.next(), lb.next()) {
            (Some(x), Some(y)) if x == y => n += 1,
            (x, y) => return (n, x.unwrap_or(""), y.unwrap_or("")),
        }
    }
}

/// Replaces `path` with `text` through a temporary file beside it and a rename, so that a
/// reader sees the old file or the new one, never half of one; the file's permissions stay.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.racelab-fmt.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&tmp, meta.permissions())?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
