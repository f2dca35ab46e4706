//! The run's figures and its rows in summary.json: whether each spec's output agrees with
//! isolationtester's (or with the expected file), on a server or on the model.

use std::path::Path;

use super::super::suite::{Report, Verdict};
use super::Explored;

/// The run's figures: how many specs matched under each tester, and the wall times.
pub(crate) struct Totals {
    pub specs: usize,
    pub matched: usize,
    pub differs: usize,
    pub unsupported: usize,
    pub errors: usize,
    pub seconds: f64,
    /// isolationtester's figures, when it ran.
    pub theirs: Option<(usize, f64)>,
}

impl Totals {
    pub(super) fn new(
        ours: &[Report],
        theirs: &[Report],
        our_seconds: f64,
        their_seconds: f64,
    ) -> Totals {
        let count = |f: fn(&Verdict) -> bool| ours.iter().filter(|r| f(&r.verdict)).count();
        Totals {
            specs: ours.len(),
            matched: count(|v| matches!(v, Verdict::Matches(_))),
            differs: count(|v| matches!(v, Verdict::Differs { .. })),
            unsupported: count(|v| matches!(v, Verdict::Unsupported(_))),
            errors: count(|v| matches!(v, Verdict::Error(_))),
            seconds: our_seconds,
            theirs: (!theirs.is_empty()).then(|| {
                (
                    theirs
                        .iter()
                        .filter(|r| matches!(r.verdict, Verdict::Matches(_)))
                        .count(),
                    their_seconds,
                )
            }),
        }
    }

    pub(crate) fn describe(&self) -> String {
        let mut s = format!("racelab: {}/{} specs match their expected output ({} differ, {} unsupported, {} errors) in {:.1} s", self.matched, self.specs, self.differs, self.unsupported, self.errors, self.seconds);
        if let Some((m, secs)) = self.theirs {
            s.push_str(&format!("; PostgreSQL's isolationtester: {m}/{} in {secs:.1} s; wall-time ratio racelab/isolationtester {:.2}", self.specs, self.seconds / secs.max(1e-9)));
        }
        s
    }
}

/// Per spec: whether racelab's run counts as agreeing with PostgreSQL: its output equals an
/// expected file, or (where isolationtester's own output on this server matches none either)
/// it equals isolationtester's output byte for byte.
pub(super) fn rows_agree(ours: &[Report], theirs: &[Report], results: &Path) -> Vec<bool> {
    ours.iter()
        .map(|r| match &r.verdict {
            Verdict::Matches(_) => true,
            Verdict::Differs { .. } => theirs.iter().find(|t| t.name == r.name).is_some_and(|t| {
                matches!(t.verdict, Verdict::Differs { .. }) && same_output(results, &r.name)
            }),
            _ => false,
        })
        .collect()
}

fn same_output(results: &Path, name: &str) -> bool {
    let read =
        |who: &str| std::fs::read_to_string(results.join(who).join(format!("{name}.out"))).ok();
    matches!((read("racelab"), read("isolationtester")), (Some(a), Some(b)) if a == b)
}

pub(super) fn merge_into_summary(
    path: &Path,
    ours: &[Report],
    theirs: &[Report],
    totals: &Totals,
    results: &Path,
    explored: Option<&Explored>,
) -> Result<(), String> {
    let mut summary: reports::Summary = match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| format!("cannot parse {}: {e}", path.display()))?,
        Err(_) => reports::Summary {
            ok: true,
            results: vec![],
            shard: None,
        },
    };
    let agree = rows_agree(ours, theirs, results);
    for (r, ok) in ours.iter().zip(&agree) {
        let theirs = theirs.iter().find(|t| t.name == r.name);
        let mut row = row(r, *ok, theirs, "db:postgres");
        if let Some(ex) = explored.and_then(|x| x.server.iter().find(|e| e.spec == r.name)) {
            super::super::explore_cli::annotate(&mut row, ex);
        }
        summary.results.push(row);
    }
    let all = agree
        .iter()
        .zip(ours)
        .all(|(ok, r)| *ok || matches!(r.verdict, Verdict::Unsupported(_)));
    let mut suite_row = row(
        &Report {
            name: "pg-isolation".into(),
            verdict: Verdict::Unsupported(String::new()),
            seconds: totals.seconds,
            permutations: ours.iter().map(|r| r.permutations).sum(),
        },
        all,
        None,
        "db:postgres",
    );
    // The table of summary.md shows the variant, not the reason: the figures go there.
    suite_row.variant = match totals.theirs {
        Some((m, secs)) => format!(
            "{}/{} match; isolationtester {m}/{}; time {:.1}s vs {secs:.1}s (ratio {:.2})",
            totals.matched,
            totals.specs,
            totals.specs,
            totals.seconds,
            totals.seconds / secs.max(1e-9)
        ),
        None => format!("{}/{} match", totals.matched, totals.specs),
    };
    suite_row.outcome = if all {
        reports::Outcome::Holds
    } else {
        reports::Outcome::Violation
    };
    suite_row.invariant = (!all).then(|| "expected_output".into());
    suite_row.met = all;
    suite_row.bound = Some(totals.describe());
    suite_row.reason = Some(totals.describe());
    summary.results.push(suite_row);
    if let Some(x) = explored {
        summary.results.push(super::super::explore_cli::suite_row(
            "pg-isolation-unlisted",
            "db:postgres",
            &x.line,
            x.seconds,
            x.server.iter().map(|e| e.ran).sum(),
        ));
    }
    summary.ok = summary.ok && all;
    let dir = path.parent().unwrap_or(Path::new("."));
    reports::write_all(&summary, dir)
        .map_err(|e| format!("cannot write the reports in {}: {e}", dir.display()))?;
    Ok(())
}

/// One summary.json row: the spec's listed permutations (or all interleavings) replayed on
/// the server, expected to print PostgreSQL's expected output.
fn row(r: &Report, agrees: bool, theirs: Option<&Report>, backend: &str) -> reports::RunResult {
    let (outcome, invariant, reason) = match &r.verdict {
        Verdict::Matches(p) => (reports::Outcome::Holds, None, Some(format!("output equals {}", p.display()))),
        Verdict::Differs { closest, diff } if agrees => (
            reports::Outcome::Holds,
            None,
            Some(format!("output differs from {} exactly as PostgreSQL's isolationtester's output does on this server (compared byte for byte)\n{}", closest.display(), diff.lines().take(30).collect::<Vec<_>>().join("\n"))),
        ),
        Verdict::Differs { closest, diff } => {
            let note = match theirs.map(|t| &t.verdict) {
                Some(Verdict::Differs { .. }) => "; PostgreSQL's isolationtester differs too, differently",
                Some(Verdict::Matches(_)) => "; PostgreSQL's isolationtester matches",
                _ => "",
            };
            (reports::Outcome::Violation, Some("expected_output".to_string()), Some(format!("output differs from {}{note}\n{}", closest.display(), diff.lines().take(30).collect::<Vec<_>>().join("\n"))))
        }
        Verdict::Unsupported(why) => (reports::Outcome::Skipped, None, Some(why.clone())),
        Verdict::Error(e) => (reports::Outcome::Error, None, Some(e.clone())),
    };
    reports::RunResult {
        outcome,
        invariant,
        schedules: r.permutations,
        seconds: r.seconds,
        met: agrees,
        bound: Some(format!(
            "{} permutations (the spec's, or every interleaving when it lists none)",
            r.permutations
        )),
        reason,
        coverage: (outcome != reports::Outcome::Skipped && outcome != reports::Outcome::Error)
            .then_some(reports::Coverage::Bounded),
        covers: Some(format!(
            "the spec's {} permutations on the {}",
            r.permutations,
            if backend == "model" {
                "model database (PostgreSQL flavour)"
            } else {
                "real server"
            }
        )),
        ..reports::RunResult::unmeasured(
            &r.name,
            "pg-isolation",
            "replay",
            backend.to_string(),
            (reports::Verdict::Holds, vec![]),
        )
    }
}

impl Totals {
    /// The model run's figures: agreement among the specs within the model's subset.
    pub(crate) fn describe_model(&self) -> String {
        let run = self.specs - self.unsupported;
        format!(
            "model: {}/{} specs within the model's subset agree with PostgreSQL's expected output ({} differ, {} errors); {} of {} specs not supported on the model; {:.1} s",
            self.matched, run, self.differs, self.errors, self.unsupported, self.specs, self.seconds
        )
    }
}

pub(super) fn merge_model_into_summary(
    path: &Path,
    ours: &[Report],
    totals: &Totals,
    explored: Option<&Explored>,
) -> Result<(), String> {
    let mut summary: reports::Summary = match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| format!("cannot parse {}: {e}", path.display()))?,
        Err(_) => reports::Summary {
            ok: true,
            results: vec![],
            shard: None,
        },
    };
    for r in ours {
        let agrees = matches!(r.verdict, Verdict::Matches(_));
        let mut row = row(r, agrees, None, "model");
        if let Verdict::Differs { closest, diff } = &r.verdict {
            row.reason = Some(format!("the model's output differs from PostgreSQL's {} (a model-vs-server finding: the model is too weak or too strong here)\n{}", closest.display(), diff.lines().take(30).collect::<Vec<_>>().join("\n")));
        }
        if let Some(ex) = explored.and_then(|x| x.model.iter().find(|e| e.spec == r.name)) {
            super::super::explore_cli::annotate(&mut row, ex);
        }
        summary.results.push(row);
    }
    let all = totals.differs + totals.errors == 0;
    let mut suite_row = row(
        &Report {
            name: "pg-isolation-model".into(),
            verdict: Verdict::Unsupported(String::new()),
            seconds: totals.seconds,
            permutations: ours.iter().map(|r| r.permutations).sum(),
        },
        all,
        None,
        "model",
    );
    suite_row.variant = format!(
        "model: {}/{} supported specs agree; {} not supported; {:.1}s",
        totals.matched,
        totals.specs - totals.unsupported,
        totals.unsupported,
        totals.seconds
    );
    suite_row.outcome = if all {
        reports::Outcome::Holds
    } else {
        reports::Outcome::Violation
    };
    suite_row.invariant = (!all).then(|| "expected_output".into());
    suite_row.met = all;
    suite_row.bound = Some(totals.describe_model());
    suite_row.reason = Some(totals.describe_model());
    // Beside the server run's figures (matching count, time ratio) when they are there.
    match summary
        .results
        .iter()
        .position(|r| r.scenario == "pg-isolation" && r.backend == "db:postgres")
    {
        Some(i) => summary.results.insert(i + 1, suite_row),
        None => summary.results.push(suite_row),
    }
    if let Some(x) = explored.filter(|x| x.server.is_empty()) {
        summary.results.push(super::super::explore_cli::suite_row(
            "pg-isolation-unlisted-model",
            "model",
            &x.line,
            x.seconds,
            x.model.iter().map(|e| e.ran).sum(),
        ));
    }
    summary.ok = summary.ok && all;
    let dir = path.parent().unwrap_or(Path::new("."));
    reports::write_all(&summary, dir)
        .map_err(|e| format!("cannot write the reports in {}: {e}", dir.display()))?;
    Ok(())
}
