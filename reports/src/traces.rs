//! Every distinct trace once, beside the reports: `traces/KEY.txt` (the step table, for the
//! Markdown reports and terminals) and `traces/KEY.html` (the sequence diagram, linking the
//! table), which the reports link to instead of inlining a trace in every run.
//!
//! A `--quick` run inlined one per run: summary.md was 9.3 MB and summary.html 26.8 MB, a
//! trace being some 200 steps (its HTML ~80 KB). `summary.json` keeps each row's `trace` as it
//! was (tools read it; keying them by content saved 4% on a measured run, too little to change
//! the contract for).

use std::io;
use std::path::Path;

use crate::html::{escape, CSS};
use crate::model::{Summary, Trace};
use crate::table::{render_trace, Style};

/// Where [`crate::write_all`] puts the traces, relative to the report directory.
pub const TRACES_DIR: &str = "traces";

/// A trace's key: `t` and 16 hex digits of a 64-bit FNV-1a hash of its JSON, so equal traces
/// share one file in every run.
pub fn trace_key(t: &Trace) -> String {
    let json = serde_json::to_string(t).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in json.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("t{h:016x}")
}

/// A trace's file, relative to the report directory: `traces/KEY.EXT`.
pub fn trace_path(t: &Trace, ext: &str) -> String {
    format!("{TRACES_DIR}/{}.{ext}", trace_key(t))
}

/// The distinct traces of a summary with their keys, in the order the rows first show them.
pub fn distinct_traces(s: &Summary) -> Vec<(String, &Trace)> {
    let mut out: Vec<(String, &Trace)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for t in s.results.iter().filter_map(|r| r.trace.as_ref()) {
        let key = trace_key(t);
        if seen.insert(key.clone()) {
            out.push((key, t));
        }
    }
    out
}

/// Writes `KEY.txt` and `KEY.html` for every distinct trace into `dir`, removing the trace
/// files an earlier run left there (and nothing else).
pub(crate) fn write_traces(summary: &Summary, dir: &Path) -> io::Result<()> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            if is_trace_file(&e.file_name().to_string_lossy()) {
                std::fs::remove_file(e.path())?;
            }
        }
    }
    let traces = distinct_traces(summary);
    if traces.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    for (key, trace) in traces {
        let table = render_trace(trace, Style::plain());
        std::fs::write(
            dir.join(format!("{key}.txt")),
            format!(
                "{}/{}: {}\n\n{table}",
                trace.scenario, trace.variant, trace.verdict
            ),
        )?;
        std::fs::write(dir.join(format!("{key}.html")), trace_page(trace, &key))?;
    }
    Ok(())
}

/// `t` + 16 hex digits + `.txt` or `.html`: a name [`write_traces`] writes.
fn is_trace_file(name: &str) -> bool {
    let Some(stem) = name
        .strip_suffix(".txt")
        .or_else(|| name.strip_suffix(".html"))
    else {
        return false;
    };
    stem.len() == 17 && stem.starts_with('t') && stem[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// One trace as a page of its own: the sequence diagram (each box's full text on hover), and a
/// link to the step table in `KEY.txt` rather than a second copy of it (the table was a quarter
/// of the CI run's 79 MB of trace files).
fn trace_page(trace: &Trace, key: &str) -> String {
    let title = format!("{}/{}: {}", trace.scenario, trace.variant, trace.verdict);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n\
         <p><a href=\"../summary.html\">racelab summary</a></p>\n<h1>{t}</h1>\n<p>{n} steps, one lane per actor; the same as a table: <a href=\"{key}.txt\">{key}.txt</a></p>\n\
         <div class=\"diagram\">\n{svg}</div>\n</body>\n</html>\n",
        t = escape(&title),
        n = trace.steps.len(),
        svg = crate::sequence::render_sequence(trace),
    )
}
