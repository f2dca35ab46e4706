//! Renders a failing interleaving as a text table with one column per actor, the way race
//! reports are drawn by hand, plus a one-line summary of a run for terminal output.

use crate::model::{Outcome, RunResult, Trace, TraceStep};

/// How to draw: with ANSI colours or not, with Unicode box drawing or pure ASCII.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
    pub unicode: bool,
}

impl Style {
    /// Pure ASCII, no escape codes: for files, CI logs, Markdown code blocks and JUnit.
    pub fn plain() -> Self {
        Style {
            color: false,
            unicode: false,
        }
    }

    /// Colours and box drawing, for an interactive terminal.
    pub fn terminal() -> Self {
        Style {
            color: true,
            unicode: true,
        }
    }
}

/// The widest a cell may be; one long operation must not push the other actors off screen.
pub const MAX_CELL: usize = 44;
/// In a cell that shows a result, the operation gets this much and the result this much.
pub const MAX_OPERATION: usize = 32;
pub const MAX_RESULT: usize = 80;

const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

/// The characters a style draws with, looked up once so the layout code stays style-agnostic.
struct Glyphs {
    bar: &'static str,
    rule: &'static str,
    cross: &'static str,
    arrow: &'static str,
    cross_mark: &'static str,
    ellipsis: &'static str,
}

impl Glyphs {
    fn for_style(style: Style) -> Self {
        if style.unicode {
            Glyphs {
                bar: " │ ",
                rule: "─",
                cross: "─┼─",
                arrow: "→",
                cross_mark: "✗",
                ellipsis: "…",
            }
        } else {
            Glyphs {
                bar: " | ",
                rule: "-",
                cross: "-+-",
                arrow: "->",
                cross_mark: "x",
                ellipsis: "...",
            }
        }
    }
}

/// Where a step's text goes: under one actor, or across all of them (events of the world).
enum Cell {
    Actor(usize, String),
    Span(String),
}

/// One line of the table body before padding.
enum Row {
    Step { left: String, cell: Cell },
    Broke(String),
}

/// Renders `trace` as a table: step number and relative virtual time on the left, then one
/// column per actor, a marker line under every step that broke an invariant, and the verdict.
pub fn render_trace(trace: &Trace, style: Style) -> String {
    let g = Glyphs::for_style(style);
    let headers: Vec<String> = column_headers(trace)
        .iter()
        .map(|h| truncate(&clean(h, style), MAX_CELL, &g))
        .collect();
    let left = LeftColumn::new(trace);
    let left_width = left.width();
    let rows = build_rows(trace, &left, headers.len(), style, &g);
    let widths = column_widths(&headers, &rows, g.bar);

    let mut out = Vec::new();
    let header = join_line(&left.header(), &headers, &widths, g.bar);
    out.push(paint(&header, BOLD, style));
    out.push(rule_line(left_width, &widths, &g));
    for row in &rows {
        out.push(render_row(row, left_width, &widths, style, &g));
    }
    out.push(rule_line(left_width, &widths, &g));
    let verdict = format!("verdict: {}", clean(&trace.verdict, style));
    out.push(paint(&verdict, BOLD, style));
    out.join("\n") + "\n"
}

/// The actor names, or a single `world` column when a trace has no actors at all (so that
/// world events still have somewhere to go).
fn column_headers(trace: &Trace) -> Vec<String> {
    if trace.actors.is_empty() {
        vec!["world".to_string()]
    } else {
        trace.actors.clone()
    }
}

/// The leftmost column: step number and time relative to the first step, both right-aligned
/// so the digits line up.
struct LeftColumn {
    times: Vec<String>,
    step_w: usize,
    time_w: usize,
}

impl LeftColumn {
    fn new(trace: &Trace) -> Self {
        let start = trace.steps.first().map_or(0, |s| s.time_ms);
        let times: Vec<String> = trace
            .steps
            .iter()
            .map(|s| relative_time(s.time_ms.saturating_sub(start)))
            .collect();
        let time_w = times.iter().map(|t| width(t)).max().unwrap_or(0).max(4);
        let step_w = trace.steps.len().to_string().len().max(4);
        LeftColumn {
            times,
            step_w,
            time_w,
        }
    }

    fn cell(&self, step: &str, time: &str) -> String {
        format!("{step:>0$}  {time:>1$}", self.step_w, self.time_w)
    }

    fn header(&self) -> String {
        self.cell("step", "time")
    }

    fn row(&self, i: usize) -> String {
        self.cell(&(i + 1).to_string(), &self.times[i])
    }

    fn width(&self) -> usize {
        self.step_w + 2 + self.time_w
    }
}

fn build_rows(
    trace: &Trace,
    left: &LeftColumn,
    columns: usize,
    style: Style,
    g: &Glyphs,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for (i, step) in trace.steps.iter().enumerate() {
        let cell = step_cell(step, columns, style, g);
        rows.push(Row::Step {
            left: left.row(i),
            cell,
        });
        for inv in &step.broke {
            let inv = clean(inv, style);
            rows.push(Row::Broke(format!("   {} {inv} broke", g.cross_mark)));
        }
    }
    rows
}

/// `+3.000s`: milliseconds as signed seconds, because a clock can also jump backwards.
fn relative_time(ms: i64) -> String {
    let sign = if ms < 0 { '-' } else { '+' };
    let abs = ms.unsigned_abs();
    format!("{sign}{}.{:03}s", abs / 1000, abs % 1000)
}

fn step_cell(step: &TraceStep, columns: usize, style: Style, g: &Glyphs) -> Cell {
    let text = operation_text(step, style, g);
    match step.actor {
        Some(a) if a < columns => Cell::Actor(a, text),
        // An actor index the header does not know is shown rather than dropped: a renderer
        // must never hide a step of a failing schedule.
        Some(a) => Cell::Span(truncate(&format!("actor #{a}: {text}"), MAX_CELL, g)),
        None => Cell::Span(truncate(&format!("world: {text}"), MAX_CELL, g)),
    }
}

/// `operation → result`, or just the operation when it returned nothing worth showing. The
/// operation is cut first: the source line is one `--json` away, but the result (`blocked: …
/// held by X`, `IntegrityError …`) is what the reader of a failing schedule needs.
fn operation_text(step: &TraceStep, style: Style, g: &Glyphs) -> String {
    let op = clean(&step.operation, style);
    if step.result.is_empty() {
        truncate(&op, MAX_CELL, g)
    } else {
        format!(
            "{} {} {}",
            truncate(&op, MAX_OPERATION, g),
            g.arrow,
            truncate(&clean(&step.result, style), MAX_RESULT, g)
        )
    }
}

/// Makes text safe to place in a cell: control characters (newlines, tabs) would break the
/// layout, and plain style promises pure ASCII, so other characters are escaped there.
fn clean(text: &str, style: Style) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.push(' ');
        } else if !style.unicode && !c.is_ascii() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Cuts `text` to at most `max` characters, marking the cut with the style's ellipsis.
fn truncate(text: &str, max: usize, g: &Glyphs) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(g.ellipsis.chars().count());
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(g.ellipsis);
    out
}

fn width(text: &str) -> usize {
    text.chars().count()
}

fn pad(text: &str, w: usize) -> String {
    let fill = w.saturating_sub(width(text));
    format!("{text}{}", " ".repeat(fill))
}

/// Each column fits its header and cells; spanning cells widen the last column if the actor
/// columns together are too narrow for them.
fn column_widths(headers: &[String], rows: &[Row], bar: &str) -> Vec<usize> {
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    let mut widest_span = 0;
    for row in rows {
        match row {
            Row::Step {
                cell: Cell::Actor(a, text),
                ..
            } => widths[*a] = widths[*a].max(width(text)),
            Row::Step {
                cell: Cell::Span(text),
                ..
            } => widest_span = widest_span.max(width(text)),
            Row::Broke(_) => {}
        }
    }
    let spanned = span_width(&widths, bar);
    if let Some(last) = widths.last_mut() {
        *last += widest_span.saturating_sub(spanned);
    }
    widths
}

/// The width of all actor columns together, separators included.
fn span_width(widths: &[usize], bar: &str) -> usize {
    let seps = widths.len().saturating_sub(1) * width(bar);
    widths.iter().sum::<usize>() + seps
}

fn join_line(left: &str, cells: &[String], widths: &[usize], bar: &str) -> String {
    let mut line = left.to_string();
    for (cell, w) in cells.iter().zip(widths) {
        line.push_str(bar);
        line.push_str(&pad(cell, *w));
    }
    line.trim_end().to_string()
}

fn rule_line(left_width: usize, widths: &[usize], g: &Glyphs) -> String {
    let mut line = g.rule.repeat(left_width);
    for w in widths {
        line.push_str(g.cross);
        line.push_str(&g.rule.repeat(*w));
    }
    line
}

fn render_row(row: &Row, left_width: usize, widths: &[usize], style: Style, g: &Glyphs) -> String {
    match row {
        Row::Broke(text) => paint(text, RED, style),
        Row::Step { left, cell } => {
            let left = pad(left, left_width);
            match cell {
                // Columns right of the actor stay empty and are left out, so a row ends
                // at its text instead of at a trail of separators.
                Cell::Actor(a, text) => {
                    let mut cells = vec![String::new(); a + 1];
                    cells[*a] = text.clone();
                    join_line(&left, &cells, widths, g.bar)
                }
                Cell::Span(text) => format!("{left}{}{text}", g.bar).trim_end().to_string(),
            }
        }
    }
}

/// Wraps a whole line in an ANSI attribute; applied after padding so escapes never count
/// towards a column's width.
fn paint(line: &str, code: &str, style: Style) -> String {
    if style.color {
        format!("{code}{line}{RESET}")
    } else {
        line.to_string()
    }
}

/// One line about a run, e.g. `lockfile/naive [shuttle-pct, model]: violation (mutual_exclusion),
/// expected violation (mutual_exclusion); 1234 schedules in 2.50s, first failure after 17 -> MET`.
/// Pure ASCII apart from what the run's own strings contain.
pub fn render_result_line(r: &RunResult) -> String {
    if let Some(by) = &r.proved_by {
        let met = if r.is_met() { "MET" } else { "NOT MET" };
        return format!("{}/{} [{}, {}]: {}, expected {}; proved by {by} over every reachable state, not run -> {met}", r.scenario, r.variant, r.engine, r.backend, r.outcome_label(), r.expected_label());
    }
    let mut line = format!(
        "{}/{} [{}, {}]: {}, expected {}; {} schedules",
        r.scenario,
        r.variant,
        r.engine,
        r.backend,
        r.outcome_label(),
        r.expected_label(),
        r.schedules,
    );
    if let Some(states) = r.states {
        line.push_str(&format!(", {states} states"));
    }
    let coverage = r.coverage_label();
    if !coverage.is_empty() {
        line.push_str(&format!(" ({coverage})"));
    } else if r.exhaustive && r.coverage.is_none() {
        // A row from a summary written before `coverage` existed.
        line.push_str(" (exhaustive)");
    }
    if let Some(level) = r.env.as_ref().and_then(|e| e.isolation_level.as_deref()) {
        line.push_str(&format!(", isolation {level}"));
    }
    line.push_str(&format!(" in {:.2}s", r.seconds));
    if let Some(after) = r.first_failure_after {
        line.push_str(&format!(", first failure after {after}"));
    }
    line.push_str(match r.outcome {
        // A skipped run was never judged; calling it NOT MET would read as a failure.
        Outcome::Skipped => " -> SKIPPED",
        _ if r.is_met() => " -> MET",
        _ => " -> NOT MET",
    });
    if let Some(reason) = r.reason_line() {
        line.push_str(&format!(" ({reason})"));
    }
    line
}
