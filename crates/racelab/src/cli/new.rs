//! `racelab new NAME`: writes a commented starting scenario, never over an existing file.

use std::path::PathBuf;

use super::output::{eprint_error, BAD_INPUT};

#[derive(clap::Args)]
pub(crate) struct NewArgs {
    /// The scenario's name; the file is NAME.race (NAME may be a path, `dir/NAME`).
    name: String,
}

/// Writes NAME.race and says what to run next.
pub(crate) fn run(args: &NewArgs) -> u8 {
    let name = &args.name;
    let path = PathBuf::from(if name.ends_with(".race") {
        name.to_string()
    } else {
        format!("{name}.race")
    });
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Err(e) = racelab::starter::check_name(&stem) {
        eprint_error(&e);
        return e.exit_code();
    }
    // `create_new` refuses an existing file in the same call that creates it: no window in
    // which another file could appear and be overwritten.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path);
    let written = file.and_then(|mut f| {
        use std::io::Write as _;
        f.write_all(racelab::starter::scenario(&stem).as_bytes())
    });
    match written {
        Ok(()) => {
            let p = path.display();
            println!("wrote {p}: a lock taken by checking, then creating (variant `racy` breaks `exclusive`, `fixed` holds)");
            println!("next: racelab check {p} && racelab explore {p}");
            0
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprint_error(format_args!(
                "{} already exists; racelab new does not overwrite a file: pick another name or remove it",
                path.display()
            ));
            BAD_INPUT
        }
        Err(e) => {
            eprint_error(format_args!("cannot write {}: {e}", path.display()));
            BAD_INPUT
        }
    }
}
