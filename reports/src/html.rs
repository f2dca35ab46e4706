//! Renders a whole summary as one self-contained HTML page (inline CSS, no scripts, no external
//! resources) with the same content as the Markdown report, for CI artifact viewers.

use crate::facts::{facts, first_failure, met_mark, run_name, Markup};
use crate::model::{Outcome, RunResult, Summary};
use crate::table::{render_trace, Style};

const CSS: &str = "\
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { margin-bottom: 0.2em; }
.overall { font-size: 1.1em; }
.status-ok { color: #1a7f37; }
.status-failed { color: #cf222e; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #d0d7de; padding: 0.3em 0.6em; text-align: left; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.mark { text-align: center; }
tr.met td.mark { color: #1a7f37; }
tr.not-met { background: #ffebe9; }
tr.skipped { color: #6e7781; }
tr.error { background: #fff8c5; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; }
pre.token { white-space: pre-wrap; word-break: break-all; }
.reason { white-space: pre-wrap; }
";

const COLUMNS: [&str; 11] = [
    "scenario",
    "variant",
    "engine",
    "backend",
    "expected",
    "outcome",
    "exhaustive",
    "schedules",
    "seconds",
    "first failure after",
    "met",
];

/// The whole page, ending with a newline.
pub fn render_html(summary: &Summary) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>racelab summary</title>\n",
    );
    out.push_str(&format!("<style>\n{CSS}</style>\n</head>\n<body>\n"));
    out.push_str("<h1>racelab summary</h1>\n");
    out.push_str(&overall(summary));
    out.push_str(&results_table(&summary.results));
    out.push_str(&skipped_section(&summary.results));
    out.push_str(&details_sections(&summary.results));
    out.push_str("</body>\n</html>\n");
    out
}

fn overall(summary: &Summary) -> String {
    let (status, class) = if summary.ok {
        ("OK", "status-ok")
    } else {
        ("FAILED", "status-failed")
    };
    format!(
        "<p class=\"overall\">Overall: <strong class=\"{class}\">{status}</strong> ({})</p>\n",
        escape(&summary.tally().describe())
    )
}

fn results_table(results: &[RunResult]) -> String {
    let mut out = String::from("<table>\n<thead><tr>");
    for c in COLUMNS {
        out.push_str(&format!("<th>{c}</th>"));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (i, r) in results.iter().enumerate() {
        out.push_str(&result_row(i, r));
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// The row's class drives its colour; a run with details links its outcome to them.
fn result_row(i: usize, r: &RunResult) -> String {
    let outcome = escape(&r.outcome_label());
    let outcome = if r.has_details() {
        format!("<a href=\"#{}\">{outcome}</a>", anchor(i))
    } else {
        outcome
    };
    let cells = [
        td("", &escape(&r.scenario)),
        td("", &escape(&r.variant)),
        td("", &escape(&r.engine)),
        td("", &escape(&r.backend)),
        td("", &escape(&r.expected_label())),
        td("", &outcome),
        td("mark", if r.exhaustive { "yes" } else { "no" }),
        td("num", &r.schedules.to_string()),
        td("num", &format!("{:.2}", r.seconds)),
        td("num", &first_failure(r)),
        td("mark", met_mark(r)),
    ];
    format!("<tr class=\"{}\">{}</tr>\n", row_class(r), cells.concat())
}

fn row_class(r: &RunResult) -> &'static str {
    match r.outcome {
        Outcome::Skipped => "skipped",
        Outcome::Error => "error",
        _ if r.is_met() => "met",
        _ => "not-met",
    }
}

/// A cell whose content is already escaped.
fn td(class: &str, html: &str) -> String {
    if class.is_empty() {
        format!("<td>{html}</td>")
    } else {
        format!("<td class=\"{class}\">{html}</td>")
    }
}

/// Anchors use the run's position, not its name: names may repeat and contain anything.
fn anchor(i: usize) -> String {
    format!("run-{i}")
}

fn skipped_section(results: &[RunResult]) -> String {
    let rows: Vec<&RunResult> = results
        .iter()
        .filter(|r| r.outcome.is_skipped_or_error())
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2>Skipped and errors</h2>\n<ul>\n");
    for r in rows {
        let reason = r.reason.as_deref().unwrap_or("no reason given");
        out.push_str(&format!(
            "<li><strong>{}</strong> {}: <span class=\"reason\">{}</span></li>\n",
            r.outcome,
            escape(&run_name(r)),
            escape(reason)
        ));
    }
    out.push_str("</ul>\n");
    out
}

fn details_sections(results: &[RunResult]) -> String {
    let mut out = String::new();
    let detailed = results.iter().enumerate().filter(|(_, r)| r.has_details());
    for (n, (i, r)) in detailed.enumerate() {
        if n == 0 {
            out.push_str("<h2>Details</h2>\n");
        }
        out.push_str(&details(i, r));
    }
    out
}

fn details(i: usize, r: &RunResult) -> String {
    let mut out = format!("<section id=\"{}\">\n", anchor(i));
    out.push_str(&format!("<h3>{}</h3>\n", escape(&run_name(r))));
    out.push_str(&fact_list(r));
    if let Some(token) = &r.replay {
        out.push_str("<p>Replay token:</p>\n");
        out.push_str(&format!("<pre class=\"token\">{}</pre>\n", escape(token)));
    }
    if let Some(trace) = &r.trace {
        out.push_str("<p>Trace:</p>\n");
        let table = render_trace(trace, Style::plain());
        out.push_str(&format!("<pre class=\"trace\">{}</pre>\n", escape(&table)));
    }
    out.push_str("</section>\n");
    out
}

/// The HTML flavour of the shared per-run facts.
const MARKUP: Markup = Markup { text: escape, code };

fn fact_list(r: &RunResult) -> String {
    let mut out = String::from("<ul>\n");
    for fact in facts(r, &MARKUP) {
        out.push_str(&format!("<li>{}", fact.line));
        if !fact.children.is_empty() {
            out.push_str("\n<ul>\n");
            for child in &fact.children {
                out.push_str(&format!("<li>{child}</li>\n"));
            }
            out.push_str("</ul>\n");
        }
        out.push_str("</li>\n");
    }
    out.push_str("</ul>\n");
    out
}

fn code(s: &str) -> String {
    format!("<code>{}</code>", escape(s))
}

/// Escapes the five characters that matter in HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}
