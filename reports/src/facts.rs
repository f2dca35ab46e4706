//! What the Markdown and HTML reports say about one run, written once against a pair of
//! escapers so the two formats cannot drift apart.

use crate::model::{Divergence, Env, Finding, Outcome, RunResult};

/// How a format escapes prose and marks up code; each function returns ready-to-embed text.
pub(crate) struct Markup {
    pub text: fn(&str) -> String,
    pub code: fn(&str) -> String,
}

/// One bullet of a run's details, with optional nested bullets.
pub(crate) struct Fact {
    pub line: String,
    pub children: Vec<String>,
}

impl Fact {
    fn leaf(line: String) -> Self {
        Fact {
            line,
            children: Vec::new(),
        }
    }
}

/// `scenario/variant/engine/backend`: a run's full name.
pub(crate) fn run_name(r: &RunResult) -> String {
    format!("{}/{}", r.scenario, r.case_name())
}

/// ✓ or ✗; a skipped run was never judged, so it gets a dash rather than a cross that would
/// read as a failure.
pub(crate) fn met_mark(r: &RunResult) -> &'static str {
    match r.outcome {
        Outcome::Skipped => "–",
        _ if r.is_met() => "✓",
        _ => "✗",
    }
}

/// A dash for "none", so empty cells are not mistaken for missing data.
pub(crate) fn first_failure(r: &RunResult) -> String {
    r.first_failure_after
        .map_or("–".to_string(), |n| n.to_string())
}

/// The bullet points of a run's details section, in the order both reports show them.
pub(crate) fn facts(r: &RunResult, m: &Markup) -> Vec<Fact> {
    let text = m.text;
    let mut facts = vec![Fact::leaf(format!(
        "expected {}, got {}",
        text(&r.expected_label()),
        text(&r.outcome_label())
    ))];
    // An error's reason is what a reader acts on; skipped runs are listed with theirs apart.
    if let (Outcome::Error, Some(reason)) = (r.outcome, &r.reason) {
        facts.push(Fact::leaf(format!("error: {}", text(reason))));
    }
    if let Some(covers) = &r.covers {
        let label = r.coverage.map_or("", |c| c.as_str());
        facts.push(Fact::leaf(format!(
            "coverage: {}: {}",
            text(label),
            text(covers)
        )));
    }
    if let Some(bound) = &r.bound {
        facts.push(Fact::leaf(format!("bound: {}", text(bound))));
    }
    if let Some(faults) = &r.faults {
        facts.push(Fact::leaf(format!("faults: {}", text(faults))));
    }
    if let Some(s) = r.switches {
        let shrunk = r
            .shrunk_switches
            .map_or(String::new(), |n| format!(", shrunk to {n}"));
        facts.push(Fact::leaf(format!("context switches: {s}{shrunk}")));
    }
    if let Some(rate) = &r.rate {
        facts.push(Fact::leaf(format!("rate: {}", text(&rate.describe()))));
    }
    if let Some(d) = &r.divergence {
        facts.push(Fact::leaf(divergence(d, m)));
    }
    if let Some(env) = r.env.as_ref().filter(|e| e.has_fs_facts()) {
        facts.push(Fact::leaf(env_fact(env, m)));
    }
    if let Some(level) = r.env.as_ref().and_then(|e| e.isolation_level.as_deref()) {
        let server = r
            .env
            .as_ref()
            .and_then(|e| e.server_version.as_deref())
            .map_or(String::new(), |v| format!(" on {}", (m.code)(v)));
        facts.push(Fact::leaf(format!(
            "database isolation: {}{server}",
            (m.code)(level)
        )));
    }
    // The primary finding's token is shown on its own below; list them all only when a run
    // broke more than one invariant, each with its own token.
    if r.findings.len() > 1 {
        facts.push(Fact {
            line: "findings:".to_string(),
            children: r.findings.iter().map(|f| finding(f, m)).collect(),
        });
    }
    facts
}

fn divergence(d: &Divergence, m: &Markup) -> String {
    let code = m.code;
    format!(
        "divergence at step {}: {} ran {}; the model returned {}, the real backend {}",
        d.step,
        code(&d.actor),
        code(&d.operation),
        code(&d.model),
        code(&d.real)
    )
}

fn env_fact(env: &Env, m: &Markup) -> String {
    let mut parts = Vec::new();
    if let Some(fs) = &env.fs_type {
        parts.push(format!("filesystem {}", (m.code)(fs)));
    }
    if let Some(opts) = &env.mount_options {
        parts.push(format!("mount options {}", (m.code)(opts)));
    }
    format!("env: {}", parts.join(", "))
}

fn finding(f: &Finding, m: &Markup) -> String {
    format!(
        "{} after {} schedules ({} switches, shrunk to {}): replay {}",
        (m.code)(&f.invariant),
        f.after,
        f.switches,
        f.shrunk_switches,
        (m.code)(&f.replay)
    )
}

/// `scenario/variant` and its model assumptions, once per variant that states any, in the
/// order the rows first show them.
pub(crate) fn assumptions_by_variant(results: &[RunResult]) -> Vec<(String, &[String])> {
    let mut out: Vec<(String, &[String])> = Vec::new();
    for r in results.iter().filter(|r| !r.assumptions.is_empty()) {
        let name = format!("{}/{}", r.scenario, r.variant);
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, &r.assumptions));
        }
    }
    out
}
