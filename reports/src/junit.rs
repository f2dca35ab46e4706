//! Renders a summary as JUnit XML so CI systems show each run as a test case: one suite per
//! scenario, one case per `variant/engine/backend`.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::model::{Outcome, RunResult, Summary};
use crate::table::{render_result_line, render_trace, Style};

/// The JUnit XML document. Suites appear in the order their scenarios first appear in
/// `summary.results`, so the output is as stable as the input.
pub fn render_junit(summary: &Summary) -> String {
    let mut report = Report::new("racelab");
    for (scenario, runs) in by_scenario(&summary.results) {
        let mut suite = TestSuite::new(scenario);
        suite.add_test_cases(runs.into_iter().map(test_case));
        report.add_test_suite(suite);
    }
    // Serialising into memory has no I/O that could fail, and every string goes through
    // quick-junit's XmlString, which strips what XML cannot hold.
    report
        .to_string()
        .expect("serialising a JUnit report into a String cannot fail")
}

/// Groups runs by scenario, keeping first-appearance order of both scenarios and runs.
fn by_scenario(results: &[RunResult]) -> Vec<(&str, Vec<&RunResult>)> {
    let mut groups: Vec<(&str, Vec<&RunResult>)> = Vec::new();
    for r in results {
        match groups.iter_mut().find(|(s, _)| *s == r.scenario) {
            Some((_, runs)) => runs.push(r),
            None => groups.push((&r.scenario, vec![r])),
        }
    }
    groups
}

fn test_case(r: &RunResult) -> TestCase {
    let mut case = TestCase::new(r.case_name(), status(r));
    case.set_classname(r.scenario.as_str());
    // Duration::from_secs_f64 panics on negative or non-finite input; such a time is
    // simply left out.
    if let Ok(time) = Duration::try_from_secs_f64(r.seconds) {
        case.set_time(time);
    }
    case
}

/// Skipped and error come first: neither is ever a pass, whatever `met` says.
fn status(r: &RunResult) -> TestCaseStatus {
    match r.outcome {
        Outcome::Skipped => skipped(r),
        Outcome::Error => error(r),
        _ if r.is_met() => TestCaseStatus::success(),
        _ => failure(r),
    }
}

fn skipped(r: &RunResult) -> TestCaseStatus {
    let mut status = TestCaseStatus::skipped();
    status.set_message(r.reason_line().unwrap_or("skipped"));
    if let Some(reason) = &r.reason {
        status.set_description(reason.as_str());
    }
    status
}

fn error(r: &RunResult) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
    status.set_message(r.reason_line().unwrap_or("the harness reported an error"));
    status.set_type("error");
    if let Some(reason) = &r.reason {
        status.set_description(reason.as_str());
    }
    status
}

fn failure(r: &RunResult) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
    status.set_message(failure_message(r));
    status.set_type(r.outcome.as_str());
    status.set_description(failure_description(r));
    status
}

/// E.g. `expected violation (mutual_exclusion), got holds; replay: TOKEN`.
fn failure_message(r: &RunResult) -> String {
    let mut msg = format!("expected {}, got {}", r.expected_label(), r.outcome_label());
    if let Some(token) = &r.replay {
        msg.push_str(&format!("; replay: {token}"));
    }
    msg
}

/// The text body of a failure: the run in one line, the token, and the trace when there is one,
/// so a CI log viewer shows everything needed to reproduce it.
fn failure_description(r: &RunResult) -> String {
    let mut text = render_result_line(r);
    text.push('\n');
    if let Some(token) = &r.replay {
        text.push_str(&format!("replay: {token}\n"));
    }
    if let Some(trace) = &r.trace {
        text.push('\n');
        text.push_str(&render_trace(trace, Style::plain()));
    }
    text
}
