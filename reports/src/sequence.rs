//! A failing interleaving as an inline SVG sequence diagram: one lane per actor, one box per
//! step in order, faults and blocked steps marked, the broken invariant at the end.
//!
//! Plain SVG with its own styles and no scripts or external references, so the page that
//! embeds it stays self-contained. Long traces are drawn whole: a race is read top to bottom,
//! and the browser scrolls.

use crate::html::escape;
use crate::model::{Trace, TraceStep};

const LANE_WIDTH: usize = 230;
const LEFT: usize = 90;
const HEADER: usize = 34;
const ROW: usize = 26;
const BOX_HEIGHT: usize = 20;
/// Characters that fit in a box at the diagram's font size.
const BOX_CHARS: usize = 31;

/// How a step is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Step,
    Fault,
    Blocked,
    Broke,
}

fn kind(step: &TraceStep) -> Kind {
    if !step.broke.is_empty() {
        Kind::Broke
    } else if step.operation.starts_with("FAULT") {
        Kind::Fault
    } else if step.result.starts_with("blocked") || step.result.contains("<waiting>") {
        Kind::Blocked
    } else {
        Kind::Step
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `+1.500s` from the first step's time.
fn offset(ms: i64, start: i64) -> String {
    let d = ms - start;
    format!("+{}.{:03}s", d / 1000, (d % 1000).abs())
}

/// The diagram for `trace`, as an `<svg>` element (with a `<title>` for accessibility).
pub fn render_sequence(trace: &Trace) -> String {
    let lanes = trace.actors.len().max(1);
    let width = LEFT + lanes * LANE_WIDTH + 20;
    let steps = trace.steps.len();
    let verdict_y = HEADER + steps * ROW + 16;
    let height = verdict_y + 30;
    let start = trace.steps.first().map_or(0, |s| s.time_ms);
    let lane_x = |a: usize| LEFT + a * LANE_WIDTH + LANE_WIDTH / 2;
    let mut out = format!(
        "<svg class=\"sequence\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" font-family=\"ui-monospace, monospace\" font-size=\"11\">\n"
    );
    out.push_str(&format!(
        "<title>{}/{}: {}</title>\n",
        escape(&trace.scenario),
        escape(&trace.variant),
        escape(&trace.verdict)
    ));
    out.push_str(
        "<style>.lane{stroke:#8c959f;stroke-dasharray:4 3}.step{fill:#ddf4ff;stroke:#54aeff}.fault{fill:#ffebe9;stroke:#cf222e}.blocked{fill:#fff8c5;stroke:#bf8700;stroke-dasharray:3 2}.broke{fill:#ffebe9;stroke:#cf222e;stroke-width:2}.switch{stroke:#afb8c1}.time{fill:#57606a}.head{font-weight:bold;font-family:system-ui,sans-serif;font-size:12px}.verdict{fill:#cf222e;font-weight:bold}</style>\n",
    );
    for (a, name) in trace.actors.iter().enumerate() {
        let x = lane_x(a);
        out.push_str(&format!(
            "<text class=\"head\" x=\"{x}\" y=\"18\" text-anchor=\"middle\">{}</text>\n",
            escape(name)
        ));
        out.push_str(&format!(
            "<line class=\"lane\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/>\n",
            HEADER - 8,
            verdict_y - 10
        ));
    }
    let mut previous: Option<(usize, usize)> = None;
    for (i, step) in trace.steps.iter().enumerate() {
        let y = HEADER + i * ROW;
        let lane = step.actor.unwrap_or(0).min(lanes - 1);
        let x = lane_x(lane);
        let k = kind(step);
        // A context switch: a thin connector from the previous step's lane to this one.
        if let Some((pa, py)) = previous.filter(|(pa, _)| *pa != lane) {
            out.push_str(&format!(
                "<line class=\"switch\" x1=\"{}\" y1=\"{}\" x2=\"{x}\" y2=\"{y}\"/>\n",
                lane_x(pa),
                py + BOX_HEIGHT
            ));
        }
        previous = Some((lane, y));
        out.push_str(&format!(
            "<text class=\"time\" x=\"4\" y=\"{}\">{} {}</text>\n",
            y + 14,
            i + 1,
            offset(step.time_ms, start)
        ));
        let class = match k {
            Kind::Step => "step",
            Kind::Fault => "fault",
            Kind::Blocked => "blocked",
            Kind::Broke => "broke",
        };
        let left = x - LANE_WIDTH / 2 + 6;
        out.push_str(&format!("<g class=\"row {class}-row\">"));
        let broke = if step.broke.is_empty() {
            String::new()
        } else {
            format!("; broke {}", step.broke.join(", "))
        };
        out.push_str(&format!(
            "<title>{} → {}{broke}</title>",
            escape(&step.operation),
            escape(&step.result)
        ));
        out.push_str(&format!("<rect class=\"{class}\" x=\"{left}\" y=\"{y}\" width=\"{}\" height=\"{BOX_HEIGHT}\" rx=\"3\"/>", LANE_WIDTH - 12));
        let label = if step.result.is_empty() || step.result == "ok" {
            step.operation.clone()
        } else {
            format!("{} → {}", step.operation, step.result)
        };
        let marker = match k {
            Kind::Fault => "⚡ ",
            Kind::Blocked => "⏸ ",
            Kind::Broke => "✗ ",
            Kind::Step => "",
        };
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\">{}</text></g>\n",
            left + 5,
            y + 14,
            escape(&shorten(&format!("{marker}{label}"), BOX_CHARS))
        ));
    }
    out.push_str(&format!(
        "<text class=\"verdict\" x=\"4\" y=\"{}\">{}</text>\n",
        verdict_y + 4,
        escape(&shorten(&trace.verdict, 160))
    ));
    out.push_str("</svg>\n");
    out
}
