//! The per-actor trace table and the one-line run summary.

use expect_test::expect;
use reports::table::{
    render_result_line, render_trace, Style, MAX_CELL, MAX_OPERATION, MAX_RESULT,
};
use reports::{Trace, TraceStep};

use crate::fixtures;

#[test]
fn plain_trace_has_one_column_per_actor() {
    let out = render_trace(&fixtures::lockfile_trace(), Style::plain());
    expect![[r#"
        step     time | qrunner1                        | qrunner2                               | qrunner3
        --------------+---------------------------------+----------------------------------------+----------------------------------------
           1  +0.000s | open(tmp, O_CREAT|O_EXCL) -> ok
           2  +0.000s | link(tmp, LOCKFILE) -> ok
           3  +0.001s |                                 | link(tmp, LOCKFILE) -> EEXIST
           4  +3.000s | world: clock.advance(3s)
           5  +3.000s |                                 |                                        | stat(LOCKFILE).mtime < now - 2s -> true
           6  +3.001s |                                 |                                        | unlink(LOCKFILE) -> ok
           7  +3.002s |                                 | link(tmp, LOCKFILE) -> ok
           x mutual_exclusion broke
           8  +3.002s |                                 | write(section, "a payload lon... -> ok
        --------------+---------------------------------+----------------------------------------+----------------------------------------
        verdict: mutual_exclusion broke: holders(section) <= 1
    "#]]
    .assert_eq(&out);
    assert!(out.is_ascii(), "plain style must be pure ASCII");
}

#[test]
fn unicode_trace_draws_boxes_and_colors_markers() {
    let style = Style {
        color: true,
        unicode: true,
    };
    let out = render_trace(&fixtures::lockfile_trace(), style);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("\x1b[1m"),
        "header is bold: {:?}",
        lines[0]
    );
    assert!(
        lines[1].contains("─┼─"),
        "rule uses box drawing: {:?}",
        lines[1]
    );
    assert!(out.contains("link(tmp, LOCKFILE) → EEXIST"));
    assert!(out.contains("\x1b[31m   ✗ mutual_exclusion broke\x1b[0m"));
    assert!(
        out.contains('…'),
        "the long write is truncated with an ellipsis"
    );
}

#[test]
fn color_only_changes_escape_codes() {
    let plain = render_trace(&fixtures::lockfile_trace(), Style::plain());
    let colored = render_trace(
        &fixtures::lockfile_trace(),
        Style {
            color: true,
            unicode: false,
        },
    );
    let stripped = colored
        .replace("\x1b[1m", "")
        .replace("\x1b[31m", "")
        .replace("\x1b[0m", "");
    assert_ne!(plain, colored);
    assert_eq!(plain, stripped);
}

#[test]
fn long_operations_are_cut_but_results_stay_visible() {
    let mut trace = fixtures::lockfile_trace();
    let step = trace
        .steps
        .iter_mut()
        .find(|s| s.operation.contains("write("))
        .unwrap();
    step.operation = format!("write({})", "x".repeat(200));
    step.result =
        "blocked: gap before supremum in patch (next-key lock) is locked by parser1".into();
    let out = render_trace(&trace, Style::plain());
    let row = out.lines().find(|l| l.contains("write(")).unwrap();
    let cell = row
        .split(" | ")
        .find(|c| c.contains("write("))
        .unwrap()
        .trim_end();
    let (op, result) = cell.split_once(" -> ").unwrap();
    assert_eq!(op.chars().count(), MAX_OPERATION, "{op:?}");
    assert!(op.ends_with("..."));
    assert_eq!(
        result,
        "blocked: gap before supremum in patch (next-key lock) is locked by parser1"
    );
    assert!(cell.chars().count() <= MAX_OPERATION + 4 + MAX_RESULT);
    // A cell without a result is capped as a whole.
    assert!(
        out.lines()
            .all(|l| l.chars().count() < 4 * (MAX_OPERATION + 4 + MAX_RESULT) + 40),
        "{out}"
    );
    let _ = MAX_CELL;
}

fn tiny_trace(steps: Vec<TraceStep>, actors: &[&str]) -> Trace {
    Trace {
        scenario: "clock".to_string(),
        variant: "skew".to_string(),
        actors: actors.iter().map(|a| a.to_string()).collect(),
        steps,
        verdict: "lease_exclusive broke".to_string(),
    }
}

fn at(actor: Option<usize>, time_ms: i64, operation: &str, result: &str) -> TraceStep {
    TraceStep {
        actor,
        time_ms,
        operation: operation.to_string(),
        result: result.to_string(),
        broke: Vec::new(),
        line: 1,
    }
}

#[test]
fn clocks_going_backwards_and_odd_input_still_render() {
    let trace = tiny_trace(
        vec![
            at(Some(0), 10_000, "lease.acquire()", "ok"),
            at(None, 8_500, "clock.set(-1.5s)", "ok"),
            at(Some(7), 8_500, "ghost()", "ok"),
            at(Some(0), 8_500, "log(\"é\nnext\")", "ok"),
        ],
        &["a"],
    );
    let out = render_trace(&trace, Style::plain());
    expect![[r#"
        step     time | a
        --------------+------------------------------
           1  +0.000s | lease.acquire() -> ok
           2  -1.500s | world: clock.set(-1.5s) -> ok
           3  -1.500s | actor #7: ghost() -> ok
           4  -1.500s | log("\u{e9} next") -> ok
        --------------+------------------------------
        verdict: lease_exclusive broke
    "#]]
    .assert_eq(&out);
    assert!(out.is_ascii());
}

#[test]
fn a_trace_without_actors_or_steps_has_a_world_column() {
    let out = render_trace(&tiny_trace(vec![], &[]), Style::plain());
    expect![[r#"
        step  time | world
        -----------+------
        -----------+------
        verdict: lease_exclusive broke
    "#]]
    .assert_eq(&out);
}

#[test]
fn result_lines_summarise_each_run() {
    let lines: Vec<String> = fixtures::failing_summary()
        .results
        .iter()
        .map(render_result_line)
        .collect();
    expect![[r#"
        lockfile/naive [shuttle-pct, model]: violation (mutual_exclusion), expected violation (mutual_exclusion); 1234 schedules in 2.50s, first failure after 17 -> MET
        lockfile/fenced [stress, fs:ext4]: holds, expected holds; 500 schedules (not refuted: budget spent) in 20.12s -> MET
        lockfile/naive [stress, fs:nfs]: skipped, expected violation (mutual_exclusion); 0 schedules in 0.00s -> SKIPPED (no NFS mount found)
        queue/at_least_once [loom, model]: holds, expected violation (no_duplicate_delivery); 96 schedules (exhaustive within preemption bound 2) in 0.75s -> NOT MET
        queue/exactly_once [shuttle-random, model]: violation (no_duplicate_delivery), expected holds; 310 schedules in 1.00s, first failure after 310 -> NOT MET
        queue/at_least_once [replay, db:postgres]: error, expected violation; 0 schedules in 0.00s -> NOT MET (connection refused (127.0.0.1:5432) <is the server running?>)"#]]
    .assert_eq(&lines.join("\n"));
}

/// The result line says what a verdict covers: a proof over every reachable state, a search
/// exhaustive within a named bound, or "not refuted" when a budget ran out.
#[test]
fn result_lines_distinguish_proof_bound_and_budget() {
    use reports::{Coverage, Outcome};
    let line = |coverage: Coverage, covers: &str, outcome: Outcome| {
        let mut r = fixtures::run("lockfile", "fenced", "engine", "model");
        r.coverage = Some(coverage);
        r.covers = Some(covers.to_string());
        r.outcome = outcome;
        r.exhaustive = coverage != Coverage::Budget;
        render_result_line(&r)
    };
    let proof = line(
        Coverage::Proof,
        "every reachable state (52576 states)",
        Outcome::Holds,
    );
    assert!(
        proof.contains("(proof over every reachable state)"),
        "{proof}"
    );
    let bounded = line(
        Coverage::Bounded,
        "every schedule within preemption bound 2",
        Outcome::Holds,
    );
    assert!(
        bounded.contains("(exhaustive within preemption bound 2)") && !bounded.contains("proof"),
        "{bounded}"
    );
    let budget = line(Coverage::Budget, "20000 schedules (random)", Outcome::Holds);
    assert!(
        budget.contains("(not refuted: budget spent)") && !budget.contains("exhaustive"),
        "{budget}"
    );
    // A violation is settled by its counterexample: a budget adds nothing to say.
    let found = line(
        Coverage::Budget,
        "17 schedules (random)",
        Outcome::Violation,
    );
    assert!(
        !found.contains("not refuted") && !found.contains("exhaustive"),
        "{found}"
    );
}
