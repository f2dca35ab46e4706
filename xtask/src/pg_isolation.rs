//! The PostgreSQL isolation suite's part of `cargo xtask run-scenarios`: `racelab isolation` on
//! the run's PostgreSQL server over scenarios/pg-isolation (PostgreSQL 15's specs and expected
//! outputs), with PostgreSQL's own isolationtester on the same specs for the wall-time ratio,
//! one row per spec merged into `target/racelab/summary.json` (and its Markdown, HTML, JUnit),
//! then a seeded sample of each spec's unlisted interleavings (`--explore`: new outcomes as
//! findings with tokens, the model compared where it runs the spec); then the same specs on
//! the model database (`--backend model`, no server needed), one `model` row per spec, the
//! model's agreement figures, and its unlisted interleavings (every one for most specs).

use std::path::Path;
use std::process::Command;

/// The command that runs the suite; the caller runs it (forwarding Ctrl-C) after the main suite
/// has written summary.json.
pub fn command(racelab: &Path, root: &Path, target: &Path, url: &str) -> Command {
    let mut cmd = Command::new(racelab);
    cmd.current_dir(root)
        .arg("isolation")
        .arg(root.join("scenarios/pg-isolation"))
        .arg(format!("--backend=db:postgres={url}"))
        .arg("--isolationtester=auto")
        // 4 per spec keeps the exploration near two minutes on 2 cores (8: about four).
        .arg("--explore=4")
        .arg("--explore-step-timeout=5")
        .arg("--results")
        .arg(target.join("racelab/pg-isolation"))
        .arg("--summary")
        .arg(target.join("racelab/summary.json"));
    cmd
}

/// The command that runs the suite on the model database; it needs no server, so it runs
/// whether or not PostgreSQL is up.
pub fn model_command(racelab: &Path, root: &Path, target: &Path) -> Command {
    let mut cmd = Command::new(racelab);
    cmd.current_dir(root)
        .arg("isolation")
        .arg(root.join("scenarios/pg-isolation"))
        .arg("--backend=model")
        .arg("--explore=1000")
        .arg("--results")
        .arg(target.join("racelab/pg-isolation"))
        .arg("--summary")
        .arg(target.join("racelab/summary.json"));
    cmd
}
