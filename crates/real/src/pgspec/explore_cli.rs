//! `racelab isolation --explore N` and `--replay TOKEN`: a spec's unlisted interleavings on the
//! server (and, where the spec is within its subset, on the model, compared interleaving by
//! interleaving), the findings printed with their tokens and merged into summary.json; and one
//! interleaving replayed from its token, printed in isolationtester's format.

use std::time::Duration;

use super::explore::{self, Connector, Exploration};
use super::suite::{Case, Database, ModelConnector, ServerConnector};
use racelab_core::error::Error;

/// What an exploration runs with.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Unlisted interleavings per spec, at most.
    pub budget: usize,
    pub seed: u64,
    pub step_wait: Duration,
}

/// A spec's file text and parsed form.
fn load(case: &Case) -> Result<(String, super::Spec), String> {
    let source = std::fs::read_to_string(&case.spec)
        .map_err(|e| format!("cannot read {}: {e}", case.spec.display()))?;
    let spec = super::load(&case.spec).map_err(|e| e.to_string())?;
    Ok((source, spec))
}

/// Explores one spec on the server: refused when the server cannot run it, infrastructure
/// when the spec cannot be read or the server fails.
pub fn on_server(db: &Database, case: &Case, s: Settings) -> Result<Exploration, Error> {
    let (source, spec) = load(case)?;
    if let Some(why) = super::suite::unsupported(&spec, db) {
        return Err(Error::refused(format!("not run: {why}")));
    }
    let mut c = ServerConnector {
        db,
        test: case.name.clone(),
        spec: &spec,
    };
    Ok(explore::explore(
        &mut c,
        &case.name,
        &source,
        &spec,
        s.budget,
        s.seed,
        s.step_wait,
    )?)
}

/// Explores one spec on the model, or says why the model cannot run it (refused).
pub fn on_model(case: &Case, s: Settings) -> Result<Exploration, Error> {
    let (source, spec) = load(case)?;
    super::model::check_spec(&spec).map_err(|e| e.context("not supported on the model"))?;
    let mut c = ModelConnector {
        sessions: spec.sessions.len(),
    };
    Ok(explore::explore(
        &mut c,
        &case.name,
        &source,
        &spec,
        s.budget,
        s.seed,
        s.step_wait,
    )?)
}

/// Interleavings with the same outcome on both backends, of those both ran.
pub fn agreement(server: &Exploration, model: &Exploration) -> (usize, usize) {
    let mut same = 0;
    let mut both = 0;
    for (name, outcome) in &server.outcomes {
        if let Some((_, m)) = model.outcomes.iter().find(|(n, _)| n == name) {
            both += 1;
            same += usize::from(m == outcome);
        }
    }
    (same, both)
}

/// The first interleaving whose outcome differs between the backends, described.
pub(crate) fn first_disagreement(server: &Exploration, model: &Exploration) -> Option<String> {
    let show = |o: &Result<explore::Outcome, &str>| match o {
        Ok(o) => o.describe(),
        Err(e) => e.to_string(),
    };
    server.outcomes.iter().find_map(|(name, outcome)| {
        let (_, m) = model.outcomes.iter().find(|(n, _)| n == name)?;
        (m != outcome).then(|| format!("{name}: server {} / model {}", show(outcome), show(m)))
    })
}

/// Prints a spec's exploration: its figures, then each finding.
pub(crate) fn print(backend: &str, ex: &Exploration) {
    println!(
        "{:<44} {backend:<11} {:>7.2} s  {}",
        ex.spec,
        ex.seconds,
        ex.describe()
    );
    for f in &ex.findings {
        println!("    finding: {}", f.interleaving);
        println!("      outcome: {}", f.outcome.describe());
        println!("      closest listed permutation: {}", f.closest);
        for d in &f.differences {
            println!("        differs: {d}");
        }
        println!(
            "      {} unlisted interleaving{} gave it; replay: racelab isolation {}.spec --replay {}",
            f.count,
            if f.count == 1 { "" } else { "s" },
            ex.spec,
            f.token
        );
    }
    for e in &ex.failed {
        println!("    failed: {e}");
    }
}

/// Adds a spec's exploration to its summary row: the figures to its reason, the findings as
/// findings (invariant `unlisted_outcome`) with their tokens.
pub(crate) fn annotate(row: &mut reports::RunResult, ex: &Exploration) {
    let text = format!("unlisted interleavings: {}", ex.describe());
    row.reason = Some(match row.reason.take() {
        Some(r) if !r.is_empty() => format!("{text}\n{r}"),
        _ => text,
    });
    row.findings = ex
        .findings
        .iter()
        .map(|f| reports::Finding {
            invariant: "unlisted_outcome".into(),
            replay: f.token.clone(),
            original: String::new(),
            after: f.after,
            switches: f.switches,
            shrunk_switches: f.switches,
        })
        .collect();
    if let Some(f) = ex.findings.first() {
        row.replay = Some(f.token.clone());
    }
}

/// The suite's exploration figures, one line.
pub(crate) fn totals(explorations: &[Exploration], agreement: Option<(usize, usize)>) -> String {
    let ran: usize = explorations.iter().map(|e| e.ran).sum();
    let listing = explorations.iter().filter(|e| e.listed > 0).count();
    let every = explorations
        .iter()
        .filter(|e| e.listed > 0 && e.exhaustive)
        .count();
    let findings: usize = explorations.iter().map(|e| e.findings.len()).sum();
    let with = explorations
        .iter()
        .filter(|e| !e.findings.is_empty())
        .count();
    let sum = |f: fn(&Exploration) -> usize| explorations.iter().map(f).sum::<usize>();
    let mut s = format!(
        "unlisted interleavings: {ran} run in {listing} specs that list permutations (every one in {every}); {findings} new outcomes in {with} specs; {} stalled, {} timed out, {} failed, {} new outcomes not reproduced",
        sum(|e| e.stalled),
        sum(|e| e.timed_out),
        sum(|e| e.failed_count),
        sum(|e| e.unconfirmed)
    );
    if let Some((same, both)) = agreement {
        s.push_str(&format!(
            "; model vs server: {same}/{both} unlisted interleavings with the same outcome"
        ));
    }
    s
}

/// A row for the suite's exploration: the figures, never failing the run (a new outcome is
/// news about the spec's coverage, not a broken expectation).
pub(crate) fn suite_row(
    name: &str,
    backend: &str,
    line: &str,
    seconds: f64,
    ran: usize,
) -> reports::RunResult {
    reports::RunResult {
        outcome: reports::Outcome::Holds,
        schedules: ran as u64,
        seconds,
        met: true,
        bound: Some(line.to_string()),
        reason: Some(line.to_string()),
        coverage: Some(reports::Coverage::Bounded),
        covers: Some("each spec's unlisted interleavings (every one, or a seeded sample), outcome = errors by step and SQLSTATE plus the tables' final rows".into()),
        ..reports::RunResult::unmeasured(
            name,
            line,
            "replay",
            backend.to_string(),
            (reports::Verdict::Holds, vec![]),
        )
    }
}

use racelab_core::error::exit::{BAD_INPUT, INFRASTRUCTURE};

/// `--replay TOKEN` on the one spec given: the interleaving's isolationtester output on
/// stdout, its outcome on stderr. Exit 0 when it ran, 1 when the run failed, 2 for a token
/// that does not fit the spec, 3 when the server is unreachable.
pub(crate) fn replay(
    case: &Case,
    token: &str,
    backend: &str,
    url: Option<&str>,
    step_wait: Duration,
) -> u8 {
    let (source, spec) = match load(case) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
    };
    let perm = match explore::decode(token, &case.name, &source, &spec) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
    };
    let recs = match url {
        Some(url) => {
            let db = match Database::create(url, "isolation_regression") {
                Ok(db) => db,
                Err(e) => {
                    eprintln!("error: {e}");
                    return INFRASTRUCTURE;
                }
            };
            let mut c = ServerConnector {
                db: &db,
                test: case.name.clone(),
                spec: &spec,
            };
            run_one(&mut c, &spec, &perm, step_wait)
        }
        None => {
            if let Err(e) = super::model::check_spec(&spec) {
                eprintln!("error: {} is not supported on the model: {e}", case.name);
                return BAD_INPUT;
            }
            let mut c = ModelConnector {
                sessions: spec.sessions.len(),
            };
            run_one(&mut c, &spec, &perm, step_wait)
        }
    };
    let rec = match recs {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return INFRASTRUCTURE;
        }
    };
    print!(
        "Parsed test spec with {} sessions\n{}",
        spec.sessions.len(),
        rec.output
    );
    match &rec.fatal {
        Some(e) => {
            eprintln!("{backend}: the run failed: {e}");
            1
        }
        None => {
            let outcome = explore::Outcome {
                errors: rec.trace.errors.iter().cloned().collect(),
                tables: rec
                    .trace
                    .tables
                    .clone()
                    .unwrap_or_else(|| Err("not read".into())),
            };
            if !rec.trace.stalled.is_empty() {
                eprintln!("{backend}: stalled: {}", rec.trace.stalled.join("; "));
            }
            eprintln!("{backend}: outcome: {}", outcome.describe());
            0
        }
    }
}

fn run_one<C: Connector>(
    c: &mut C,
    spec: &super::Spec,
    perm: &[super::parse::PermStep],
    step_wait: Duration,
) -> Result<super::run::Recorded, String> {
    explore::run_all(c, spec, &[perm.to_vec()], step_wait)?
        .pop()
        .ok_or_else(|| "nothing ran".to_string())
}
