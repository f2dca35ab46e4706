//! Renders a summary as two HTML pages (inline CSS and SVG, no scripts, nothing fetched).
//! `summary.html`: per scenario and variant the outcome on each engine and backend, divergences
//! between the model and real backends, reproduction rates pivoted per backend, assumptions,
//! skips grouped by reason, the runs that did not meet their expectation in full, and the lock
//! benchmark's charts. `runs.html`: a row and a details section per run. Each run's failing
//! interleaving is a link to its page in `traces/` (written once per distinct trace).
//!
//! Why two pages: with every run's row, details and a rate bar per line, the CI run's single
//! page was 3.5 MB for 2,166 rows (1.6 KB a row) and would pass 5 MB at some 3,200 rows; the
//! summary page now grows with variants, backends and failing runs only.

use crate::facts::{facts, first_failure, met_mark, run_name, Markup};
use crate::model::{Outcome, RunResult, Summary};
use crate::overview::{assumption_sets, rate_pivot, skipped_by_reason};

pub(crate) const CSS: &str = "\
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
td.cell { text-align: center; font-size: 0.9em; }
td.cell.met { background: #dafbe1; }
td.cell.not-met { background: #ffebe9; }
td.cell.skipped { background: #f6f8fa; color: #6e7781; }
td.cell.error { background: #fff8c5; }
.diagram { overflow-x: auto; border: 1px solid #d0d7de; padding: 0.5em; }
table.rates td[style] { background: linear-gradient(90deg, #b6e3ff var(--p), transparent var(--p)); }
.chart svg { max-width: 100%; height: auto; }
";

const COLUMNS: [&str; 11] = [
    "scenario",
    "variant",
    "engine",
    "backend",
    "expected",
    "outcome",
    "coverage",
    "schedules",
    "seconds",
    "first failure after",
    "met",
];

/// The file [`render_runs_html`] is written to, beside `summary.html`.
pub const RUNS_HTML: &str = "runs.html";

/// The whole page, ending with a newline.
pub fn render_html(summary: &Summary) -> String {
    render_html_with_charts(summary, &[])
}

fn page_start(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    )
}

/// The whole page, with the lock benchmark's charts (name, SVG text) inlined at the end: the
/// matrix, divergences, rates pivoted per backend, assumptions, skips grouped by reason and the
/// runs that did not meet their expectation in full. Every run's row and details are in
/// [`RUNS_HTML`], which the matrix links to.
pub fn render_html_with_charts(summary: &Summary, charts: &[(String, String)]) -> String {
    let mut out = page_start("racelab summary");
    out.push_str(&overall(summary));
    if !summary.results.is_empty() {
        out.push_str(&format!(
            "<p>Every run, its details, replay token and interleaving: <a href=\"{RUNS_HTML}\">{RUNS_HTML}</a></p>\n"
        ));
    }
    out.push_str(&matrix(&summary.results));
    out.push_str(&divergences(&summary.results));
    out.push_str(&rate_pivot_table(&summary.results));
    out.push_str(&assumptions(&summary.results));
    out.push_str(&skipped_groups(&summary.results));
    out.push_str(&not_met_sections(&summary.results));
    out.push_str(&charts_section(charts));
    out.push_str("</body>\n</html>\n");
    out
}

/// `runs.html`: a row per run (linking to its details), every rate with its interval, every
/// skip's and error's reason, and the details of every run that has any.
pub fn render_runs_html(summary: &Summary) -> String {
    let mut out = page_start("racelab runs");
    out.push_str("<p>Every run of the <a href=\"summary.html\">racelab summary</a>; each interleaving is a page in <code>traces/</code>.</p>\n");
    out.push_str(&overall(summary));
    out.push_str("<h2>Every run</h2>\n");
    out.push_str(&results_table(&summary.results));
    out.push_str(&rates(&summary.results));
    out.push_str(&skipped_section(&summary.results));
    out.push_str(&details_sections(&summary.results));
    out.push_str("</body>\n</html>\n");
    out
}

/// Per scenario and variant (rows), the outcome on each engine and backend (columns): the
/// page's first answer to "what broke where".
fn matrix(results: &[RunResult]) -> String {
    let mut columns: Vec<(String, String)> = Vec::new();
    let mut rows: Vec<(String, String)> = Vec::new();
    for r in results {
        let c = (r.engine.clone(), r.backend.clone());
        if !columns.contains(&c) {
            columns.push(c);
        }
        let v = (r.scenario.clone(), r.variant.clone());
        if !rows.contains(&v) {
            rows.push(v);
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2>Outcomes by engine and backend</h2>\n<table class=\"matrix\">\n<thead><tr><th>scenario / variant</th><th>expected</th>");
    for (engine, backend) in &columns {
        out.push_str(&format!(
            "<th>{}<br><small>{}</small></th>",
            escape(engine),
            escape(backend)
        ));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (scenario, variant) in &rows {
        let mine: Vec<(usize, &RunResult)> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| &r.scenario == scenario && &r.variant == variant)
            .collect();
        let expected = mine
            .first()
            .map(|(_, r)| r.expected_label())
            .unwrap_or_default();
        out.push_str(&format!(
            "<tr><td>{}/{}</td><td>{}</td>",
            escape(scenario),
            escape(variant),
            escape(&expected)
        ));
        for (engine, backend) in &columns {
            let runs: Vec<&(usize, &RunResult)> = mine
                .iter()
                .filter(|(_, r)| &r.engine == engine && &r.backend == backend)
                .collect();
            match runs.first() {
                None => out.push_str("<td class=\"cell\"></td>"),
                Some((i, r)) => {
                    // Several runs in one cell (forced replays of several findings): the worst decides.
                    let worst = runs
                        .iter()
                        .map(|(_, r)| *r)
                        .min_by_key(|r| match row_class(r) {
                            "not-met" => 0,
                            "error" => 1,
                            "met" => 2,
                            _ => 3,
                        });
                    let shown = worst.unwrap_or(r);
                    let text = format!("{} {}", met_mark(shown), shown.outcome_label());
                    let link = if shown.has_details() {
                        format!(
                            "<a href=\"{RUNS_HTML}#{}\">{}</a>",
                            anchor(*i),
                            escape(&text)
                        )
                    } else {
                        escape(&text)
                    };
                    out.push_str(&format!(
                        "<td class=\"cell {}\">{link}</td>",
                        row_class(shown)
                    ));
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// Where a real backend answered differently from the model, step by step.
fn divergences(results: &[RunResult]) -> String {
    let rows: Vec<&RunResult> = results.iter().filter(|r| r.divergence.is_some()).collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2>Divergences between the model and real backends</h2>\n<table>\n<thead><tr><th>run</th><th>step</th><th>actor</th><th>operation</th><th>model</th><th>real</th><th>met</th></tr></thead>\n<tbody>\n");
    for r in rows {
        let d = r.divergence.as_ref().expect("filtered");
        out.push_str(&format!(
            "<tr class=\"{}\"><td>{}</td><td class=\"num\">{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td><code>{}</code></td><td class=\"mark\">{}</td></tr>\n",
            row_class(r),
            escape(&run_name(r)),
            d.step,
            escape(&d.actor),
            escape(&d.operation),
            escape(&d.model),
            escape(&d.real),
            met_mark(r)
        ));
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// Every rate on real systems (forced replays and stress runs) with its Wilson interval, a
/// line per run and invariant, for `runs.html`.
fn rates(results: &[RunResult]) -> String {
    let mut lines = Vec::new();
    for r in results {
        if !r.rates.is_empty() {
            for x in &r.rates {
                lines.push((r, x.invariant.clone(), x.hits, x.runs, x.low, x.high));
            }
        } else if let Some(x) = &r.rate {
            lines.push((
                r,
                r.invariant.clone().unwrap_or_default(),
                x.hits,
                x.runs,
                x.low,
                x.high,
            ));
        }
    }
    if lines.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2>Reproduction rates on real systems</h2>\n<table>\n<thead><tr><th>run</th><th>invariant</th><th>hits / runs</th><th>95% interval (Wilson)</th></tr></thead>\n<tbody>\n");
    for (r, inv, hits, runs, low, high) in lines {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{hits} / {runs}</td><td class=\"num\">{:.1}% – {:.1}%</td></tr>\n",
            escape(&run_name(r)),
            escape(&inv),
            low * 100.0,
            high * 100.0,
        ));
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// The rates pivoted, for the summary page: a column per backend, a row per run kind and the
/// invariants that share its rates; each cell is filled as far as its rate and names its
/// interval on hover (a bar per line made the rates 936 KB of a 3.5 MB page).
fn rate_pivot_table(results: &[RunResult]) -> String {
    let p = rate_pivot(results);
    if p.rows.is_empty() {
        return String::new();
    }
    let mut out = format!("<h2>Reproduction rates on real systems</h2>\n<p>Hits of runs per backend (each cell is filled as far as its rate; hover for the 95% Wilson interval; every rate with its interval: <a href=\"{RUNS_HTML}\">{RUNS_HTML}</a>). Invariants with the same rates everywhere share a row.</p>\n<table class=\"rates\">\n<thead><tr><th>scenario / variant</th><th>run</th><th>invariant</th>");
    for b in &p.backends {
        out.push_str(&format!("<th>{}</th>", escape(b)));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &p.rows {
        out.push_str(&format!(
            "<tr><td>{}/{}</td><td>{}</td><td>{}</td>",
            escape(row.scenario),
            escape(row.variant),
            escape(row.engine),
            escape(&row.invariants.join(", "))
        ));
        for cell in &row.cells {
            match cell {
                None => out.push_str("<td></td>"),
                Some(c) => out.push_str(&format!(
                    "<td class=\"num\" title=\"{:.1}%, 95% interval {:.1}%–{:.1}%\" style=\"--p:{:.0}%\">{}/{}</td>",
                    c.percent(),
                    c.low * 100.0,
                    c.high * 100.0,
                    c.percent(),
                    c.hits,
                    c.runs
                )),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// Skipped runs once per reason, naming `scenario/variant/engine` and its backends.
fn skipped_groups(results: &[RunResult]) -> String {
    let groups = skipped_by_reason(results);
    if groups.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2>Skipped</h2>\n<ul>\n");
    for g in groups {
        let n: usize = g.runs.iter().map(|(_, b)| b.len()).sum();
        out.push_str(&format!(
            "<li><strong>{n} skipped</strong>: <span class=\"reason\">{}</span>\n<ul>\n",
            escape(g.reason)
        ));
        for (name, backends) in &g.runs {
            out.push_str(&format!(
                "<li>{}: {}</li>\n",
                escape(name),
                escape(&backends.join(", "))
            ));
        }
        out.push_str("</ul></li>\n");
    }
    out.push_str("</ul>\n");
    out
}

/// The model assumptions, once per distinct set, with the variants that state it.
fn assumptions(results: &[RunResult]) -> String {
    let sets = assumption_sets(results);
    if sets.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2>Model assumptions</h2>\n<p>What a model verdict (proof, bounded, budget) holds under; variants that state the same share an entry.</p>\n<ul>\n");
    for (names, list) in sets {
        out.push_str(&format!("<li>{}<ul>\n", escape(&names.join(", "))));
        for a in list {
            out.push_str(&format!("<li>{}</li>\n", escape(a)));
        }
        out.push_str("</ul></li>\n");
    }
    out.push_str("</ul>\n");
    out
}

/// The lock benchmark's charts (SVG files written by `cargo xtask bench-locks`), inline.
fn charts_section(charts: &[(String, String)]) -> String {
    let mut out = String::from("<h2>Lock benchmarks</h2>\n");
    if charts.is_empty() {
        out.push_str("<p>No charts yet: <code>cargo xtask bench-locks</code> measures the lock strategies on every filesystem and draws them; the next report includes them.</p>\n");
        return out;
    }
    for (name, svg) in charts {
        out.push_str(&format!(
            "<figure class=\"chart\"><figcaption>{}</figcaption>\n{}\n</figure>\n",
            escape(name),
            strip_xml_prolog(svg)
        ));
    }
    out
}

/// An SVG file's content, ready to inline: without its XML declaration or doctype.
fn strip_xml_prolog(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |i| &svg[i..])
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
        td("mark", &escape(&r.coverage_cell())),
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

/// The runs that did not meet their expectation (errors included), in full: what a reader of
/// the summary has to act on.
fn not_met_sections(results: &[RunResult]) -> String {
    let mut out = String::new();
    let missed = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.outcome != Outcome::Skipped && !r.is_met());
    for (n, (i, r)) in missed.enumerate() {
        if n == 0 {
            out.push_str("<h2>Not met and errors</h2>\n");
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
        // One page per distinct trace beside the report, opened on demand: inlined in every
        // run, the diagrams made a quick run's page 27 MB.
        out.push_str(&format!(
            "<p>The interleaving ({} steps; {}): <a href=\"{}\">sequence diagram</a>, <a href=\"{}\">text</a></p>\n",
            trace.steps.len(),
            escape(&trace.verdict),
            crate::trace_path(trace, "html"),
            crate::trace_path(trace, "txt")
        ));
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
