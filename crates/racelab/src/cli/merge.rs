//! `racelab merge SUMMARIES...`: the shards' summary.json files, checked to be one complete
//! split, written as one summary with its Markdown, HTML and JUnit XML.

use std::path::PathBuf;

use super::output::{eprint_error, BAD_INPUT, INFRASTRUCTURE};

#[derive(clap::Args)]
pub(crate) struct MergeArgs {
    /// The shards' summary.json files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Where to write the merged reports.
    #[arg(long, default_value = "target/racelab")]
    out: PathBuf,
}

/// Merges and writes; the exit code is the merged suite's.
pub(crate) fn run(args: &MergeArgs) -> u8 {
    let (files, dir) = (&args.files, &args.out);
    let mut parts = Vec::new();
    for f in files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                eprint_error(format_args!("cannot read {}: {e}", f.display()));
                return BAD_INPUT;
            }
        };
        match serde_json::from_str::<reports::Summary>(&text) {
            Ok(s) => parts.push((f.display().to_string(), s)),
            Err(e) => {
                eprint_error(format_args!(
                    "{} is not a racelab summary.json: {e}",
                    f.display()
                ));
                return BAD_INPUT;
            }
        }
    }
    let summary = match racelab::shard::merge(parts) {
        Ok(s) => s,
        Err(e) => {
            eprint_error(&e);
            return e.exit_code();
        }
    };
    match reports::write_all(&summary, dir) {
        Ok(paths) => {
            println!(
                "merged {} shards: {}",
                files.len(),
                summary.tally().describe()
            );
            for p in paths {
                println!("wrote {}", p.display());
            }
            racelab_real::suite::exit_code(&summary.results) as u8
        }
        Err(e) => {
            eprint_error(format_args!(
                "cannot write reports to {}: {e}",
                dir.display()
            ));
            INFRASTRUCTURE
        }
    }
}
