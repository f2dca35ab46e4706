//! Renders a whole summary as Markdown: `summary.md` (the overall status, one row per scenario
//! × variant with a tally per backend group and its shortest trace, every run that did not meet
//! its expectation in full, rates pivoted per backend, skips grouped by reason, assumptions
//! grouped by set) and `runs.md` (a row per run, every rate with its interval, every skip's
//! reason, and every run's details: coverage, bound, replay tokens, a link to its trace).
//!
//! Traces are never inlined, and per-run content lives in `runs.md`: with a row per run the
//! CI run's `summary.md` was 644 KB for 2,166 rows (9.3 MB when traces were inlined); now it
//! grows with variants, backends and failing runs, not with runs.

use crate::facts::{facts, first_failure, met_mark, run_name, Markup};
use crate::model::{Outcome, RunResult, Summary};
use crate::overview::{assumption_sets, overview, rate_pivot, skipped_by_reason};

const COLUMNS: [(&str, &str); 11] = [
    ("scenario", "---"),
    ("variant", "---"),
    ("engine", "---"),
    ("backend", "---"),
    ("expected", "---"),
    ("outcome", "---"),
    ("coverage", ":---:"),
    ("schedules", "---:"),
    ("seconds", "---:"),
    ("first failure after", "---:"),
    ("met", ":---:"),
];

/// The whole report, ending with a newline: the overall line, the per-variant overview, every
/// run that did not meet its expectation in full, then compact views of rates, skips and
/// assumptions. Every run's row and details are in [`RUNS_FILE`].
pub fn render_summary(summary: &Summary) -> String {
    let mut out = String::from("# racelab summary\n\n");
    out.push_str(&overall_line(summary));
    if !summary.results.is_empty() {
        out.push_str(&format!(
            "\nEvery run (its row, details, replay token and trace): [{RUNS_FILE}]({RUNS_FILE}); the same as a page: [summary.html](summary.html)\n"
        ));
    }
    out.push_str(&overview_section(&summary.results));
    out.push_str(&attention_sections(&summary.results));
    out.push_str(&rate_pivot_section(&summary.results));
    out.push_str(&skipped_groups_section(&summary.results));
    out.push_str(&assumption_sets_section(&summary.results));
    out
}

/// The file [`render_runs`] is written to, beside `summary.md`.
pub const RUNS_FILE: &str = "runs.md";

/// `runs.md`: a row per run, every rate with its interval, every skip and error with its
/// reason, and the details of every run that has any (each linking its trace file), ending
/// with a newline.
pub fn render_runs(summary: &Summary) -> String {
    let mut out = String::from("# racelab runs\n\nEvery run of [summary.md](summary.md); each trace is a file in `traces/`.\n");
    out.push_str(&results_table(&summary.results));
    out.push_str(&rates_section(&summary.results));
    out.push_str(&skipped_section(&summary.results));
    let mut detailed = summary
        .results
        .iter()
        .filter(|r| r.has_details())
        .peekable();
    if detailed.peek().is_some() {
        out.push_str("\n## Details\n");
    }
    for r in detailed {
        out.push_str(&details(r));
    }
    out
}

/// One row per scenario × variant with a cell per backend group: the report's first answer.
fn overview_section(results: &[RunResult]) -> String {
    let o = overview(results);
    if o.rows.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n## Overview\n\nRuns per scenario × variant and backend group that met (✓) or missed (✗) their expectation, were skipped (–) or errored (!), and the shortest interleaving any of them recorded, with how many distinct ones they recorded (each linked from its run in [runs.md](runs.md)).\n\n");
    let mut header = vec!["scenario".to_string(), "variant".into(), "expected".into()];
    header.extend(o.groups.iter().map(|g| text(g)));
    header.push("shortest trace".into());
    let rule: Vec<String> = (0..header.len()).map(|_| "---".to_string()).collect();
    out.push_str(&table_row(header.into_iter()));
    out.push_str(&table_row(rule.into_iter()));
    for row in &o.rows {
        let mut cells = vec![text(row.scenario), text(row.variant), text(&row.expected)];
        cells.extend(row.cells.iter().map(|c| c.compact()));
        cells.push(match row.shortest {
            Some(t) => {
                let path = crate::trace_path(t, "txt");
                let more = if row.traces > 1 {
                    format!(", {} distinct", row.traces)
                } else {
                    String::new()
                };
                format!("[{} steps]({path}){more}", t.steps.len())
            }
            None => "–".to_string(),
        });
        out.push_str(&table_row(cells.into_iter()));
    }
    out.push_str("\nBackend groups:\n\n");
    for (group, backends) in o.groups.iter().zip(&o.members) {
        out.push_str(&format!(
            "- {}: {}\n",
            text(group),
            text(&backends.join(", "))
        ));
    }
    out
}

/// The rates pivoted: a column per backend, a row per run kind and invariants sharing rates.
fn rate_pivot_section(results: &[RunResult]) -> String {
    let p = rate_pivot(results);
    if p.rows.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n## Reproduction rates on real systems\n\nHits of runs per backend; invariants with the same rates everywhere share a row. Each rate's 95% interval is in [runs.md](runs.md).\n\n");
    let mut header = vec![
        "scenario".to_string(),
        "variant".into(),
        "run".into(),
        "invariant".into(),
    ];
    header.extend(p.backends.iter().map(|b| text(b)));
    let rule: Vec<String> = (0..header.len()).map(|_| "---".to_string()).collect();
    out.push_str(&table_row(header.into_iter()));
    out.push_str(&table_row(rule.into_iter()));
    for row in &p.rows {
        let mut cells = vec![
            text(row.scenario),
            text(row.variant),
            text(row.engine),
            text(&row.invariants.join(", ")),
        ];
        cells.extend(
            row.cells
                .iter()
                .map(|c| c.map_or(String::new(), |c| format!("{}/{}", c.hits, c.runs))),
        );
        out.push_str(&table_row(cells.into_iter()));
    }
    out
}

/// Skipped runs, once per reason, naming the runs as `scenario/variant/engine: backends`.
fn skipped_groups_section(results: &[RunResult]) -> String {
    let groups = skipped_by_reason(results);
    if groups.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n## Skipped\n\n");
    for g in groups {
        let n: usize = g.runs.iter().map(|(_, b)| b.len()).sum();
        out.push_str(&format!("- **{n} skipped**: "));
        out.push_str(&list_item_body(g.reason));
        for (name, backends) in &g.runs {
            out.push_str(&format!(
                "  - {}: {}\n",
                text(name),
                text(&backends.join(", "))
            ));
        }
    }
    out
}

/// Model assumptions, once per distinct set, with the variants that state it.
fn assumption_sets_section(results: &[RunResult]) -> String {
    let sets = assumption_sets(results);
    if sets.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n## Model assumptions\n\nWhat a model verdict (`proof`, `bounded`, `budget`) holds under; variants that state the same share an entry.\n\n");
    for (names, assumptions) in sets {
        out.push_str(&format!("- {}\n", text(&names.join(", "))));
        for a in assumptions {
            out.push_str(&format!("  - {}\n", text(a)));
        }
    }
    out
}

fn overall_line(summary: &Summary) -> String {
    let status = if summary.ok { "OK" } else { "FAILED" };
    format!("Overall: **{status}** ({})\n", summary.tally().describe())
}

fn results_table(results: &[RunResult]) -> String {
    if results.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n## Every run\n\n");
    out.push_str(&table_row(COLUMNS.iter().map(|c| c.0.to_string())));
    out.push_str(&table_row(COLUMNS.iter().map(|c| c.1.to_string())));
    for r in results {
        out.push_str(&table_row(result_cells(r).into_iter()));
    }
    out
}

/// Reproduction rates on real systems: one line per invariant of every stress or forced-replay
/// row, so rates can be compared across filesystems and with and without chaos at a glance.
fn rates_section(results: &[RunResult]) -> String {
    let mut lines = Vec::new();
    for r in results {
        if !r.rates.is_empty() {
            for x in &r.rates {
                let rate = crate::model::Rate {
                    hits: x.hits,
                    runs: x.runs,
                    low: x.low,
                    high: x.high,
                };
                lines.push((r, x.invariant.clone(), rate.describe()));
            }
        } else if let Some(rate) = &r.rate {
            lines.push((r, r.invariant.clone().unwrap_or_default(), rate.describe()));
        }
    }
    if lines.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n## Reproduction rates on real systems\n\n");
    out.push_str(&table_row(
        ["scenario", "variant", "run", "backend", "invariant", "rate"]
            .iter()
            .map(|c| c.to_string()),
    ));
    out.push_str(&table_row(
        ["---", "---", "---", "---", "---", "---"]
            .iter()
            .map(|c| c.to_string()),
    ));
    for (r, inv, rate) in lines {
        out.push_str(&table_row(
            [
                text(&r.scenario),
                text(&r.variant),
                text(&r.engine),
                text(&r.backend),
                text(&inv),
                text(&rate),
            ]
            .into_iter(),
        ));
    }
    out
}

fn table_row(cells: impl Iterator<Item = String>) -> String {
    let cells: Vec<String> = cells.collect();
    format!("| {} |\n", cells.join(" | "))
}

fn result_cells(r: &RunResult) -> Vec<String> {
    vec![
        text(&r.scenario),
        text(&r.variant),
        text(&r.engine),
        text(&r.backend),
        text(&r.expected_label()),
        text(&r.outcome_label()),
        text(&r.coverage_cell()),
        r.schedules.to_string(),
        format!("{:.2}", r.seconds),
        first_failure(r),
        met_mark(r).to_string(),
    ]
}

fn skipped_section(results: &[RunResult]) -> String {
    let rows: Vec<&RunResult> = results
        .iter()
        .filter(|r| r.outcome.is_skipped_or_error())
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n## Skipped and errors\n\n");
    for r in rows {
        out.push_str(&format!("- **{}** {}: ", r.outcome, text(&run_name(r))));
        out.push_str(&list_item_body(
            r.reason.as_deref().unwrap_or("no reason given"),
        ));
    }
    out
}

/// Lines end in a hard break (a trailing backslash) so a multi-line reason keeps its lines;
/// continuation lines are indented to stay inside the list item, and a line that would start
/// a heading, list or quote there is escaped.
fn list_item_body(reason: &str) -> String {
    let lines: Vec<String> = reason
        .lines()
        .map(|line| escape_block_start(&text(line.trim_start())))
        .collect();
    format!("{}\n", lines.join("\\\n  "))
}

fn escape_block_start(line: &str) -> String {
    match line.chars().next() {
        Some('#' | '-' | '+' | '>' | '=' | '~') => format!("\\{line}"),
        _ => line.to_string(),
    }
}

/// Details of the runs that did not meet their expectation (errors included): what a reader
/// of the summary has to act on.
fn attention_sections(results: &[RunResult]) -> String {
    let mut out = String::new();
    let detailed = results
        .iter()
        .filter(|r| r.outcome != Outcome::Skipped && !r.is_met());
    for (i, r) in detailed.enumerate() {
        if i == 0 {
            out.push_str("\n## Not met and errors\n");
        }
        out.push_str(&details(r));
    }
    out
}

fn details(r: &RunResult) -> String {
    let mut out = format!("\n### {}\n\n", text(&run_name(r)));
    out.push_str(&fact_lines(r));
    if let Some(token) = &r.replay {
        out.push_str("\nReplay token:\n\n");
        out.push_str(&fenced(token));
    }
    if let Some(trace) = &r.trace {
        // Stored once per distinct trace beside the report (`write_all`): inlining it in every
        // row made a quick run's Markdown 9 MB.
        let path = crate::trace_path(trace, "txt");
        out.push_str(&format!(
            "\nTrace ({} steps; {}): [{path}]({path})\n",
            trace.steps.len(),
            text(&trace.verdict)
        ));
    }
    out
}

/// The Markdown flavour of the shared per-run facts.
const MARKUP: Markup = Markup { text, code };

fn fact_lines(r: &RunResult) -> String {
    let mut out = String::new();
    for fact in facts(r, &MARKUP) {
        out.push_str(&format!("- {}\n", fact.line));
        for child in &fact.children {
            out.push_str(&format!("  - {child}\n"));
        }
    }
    out
}

/// Escapes text for Markdown prose and table cells: characters that could start formatting,
/// HTML or a cell boundary are backslash-escaped, and newlines become spaces so a value can
/// never end a table row. Underscores inside words are left alone (`mutual_exclusion` does not
/// emphasise anything in CommonMark) to keep the raw file readable.
fn text(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '|' | '<' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '_' if !intraword(&chars, i) => out.push_str("\\_"),
            _ => out.push(c),
        }
    }
    out
}

fn intraword(chars: &[char], i: usize) -> bool {
    let alnum = |j: Option<usize>| {
        j.and_then(|j| chars.get(j))
            .is_some_and(|c| c.is_alphanumeric())
    };
    alnum(i.checked_sub(1)) && alnum(Some(i + 1))
}

/// An inline code span whose backtick fence is longer than any run of backticks inside it.
fn code(s: &str) -> String {
    let s = s.replace(['\n', '\r'], " ");
    let ticks = "`".repeat(longest_backtick_run(&s) + 1);
    // A space keeps a leading or trailing backtick from merging with the fence.
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{s}{pad}{ticks}")
}

/// A fenced `text` block that no line of `content` can close early.
fn fenced(content: &str) -> String {
    let ticks = "`".repeat((longest_backtick_run(content) + 1).max(3));
    let body = content.strip_suffix('\n').unwrap_or(content);
    format!("{ticks}text\n{body}\n{ticks}\n")
}

fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}
