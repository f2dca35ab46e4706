//! Turns racelab's run results (plain serde data) into text tables, Markdown, HTML, JSON and JUnit XML.
//!
//! Architecture invariant: this crate depends only on the result types in [`model`]; it never
//! runs a scenario, and the harness never formats text for humans outside of this crate.

mod facts;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod model;
pub mod overview;
pub mod sequence;
pub mod table;
pub mod traces;

use std::io;
use std::path::{Path, PathBuf};

pub use model::*;
pub use traces::{distinct_traces, trace_key, trace_path, TRACES_DIR};

/// Writes `summary.json`, `summary.md`, `summary.html`, `junit.xml`, `runs.md` and `runs.html`
/// (every run's row and details, linked from the summaries) into `dir` (creating it) and
/// returns the paths written, in that order. Beside them, `traces/` holds every distinct trace
/// once (`traces/KEY.txt`, `traces/KEY.html`; see [`traces`]), which the reports link to;
/// `summary.json` keeps every row's trace as data.
pub fn write_all(summary: &Summary, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    traces::write_traces(summary, &dir.join(TRACES_DIR))?;
    let mut json = serde_json::to_string_pretty(summary).map_err(io::Error::other)?;
    json.push('\n');
    let files = [
        ("summary.json", json),
        ("summary.md", markdown::render_summary(summary)),
        (
            "summary.html",
            html::render_html_with_charts(summary, &lock_charts(dir)),
        ),
        ("junit.xml", junit::render_junit(summary)),
        (markdown::RUNS_FILE, markdown::render_runs(summary)),
        (html::RUNS_HTML, html::render_runs_html(summary)),
    ];
    let mut written = Vec::with_capacity(files.len());
    for (name, contents) in files {
        let path = dir.join(name);
        std::fs::write(&path, contents)?;
        written.push(path);
    }
    Ok(written)
}

/// Only `summary.json`, for a caller that merges the rows into reports of its own (the NFS
/// guest's suite, whose host renders everything once): rendering Markdown and HTML under
/// emulation costs more than the rows.
pub fn write_json(summary: &Summary, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut json = serde_json::to_string_pretty(summary).map_err(io::Error::other)?;
    json.push('\n');
    let path = dir.join("summary.json");
    std::fs::write(&path, json)?;
    Ok(vec![path])
}

/// The SVG charts `cargo xtask bench-locks` writes to `target/bench-locks/` (a sibling of the
/// report directory `target/racelab/`), by file name, for the HTML report; none when the
/// benchmark has not run.
fn lock_charts(dir: &Path) -> Vec<(String, String)> {
    let Some(bench) = dir.parent().map(|p| p.join("bench-locks")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&bench)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "svg"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| {
            Some((
                p.file_stem()?.to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).ok()?,
            ))
        })
        .collect()
}
