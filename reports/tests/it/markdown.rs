//! The Markdown report.

use expect_test::expect;
use reports::markdown::render_summary;

use crate::fixtures;

#[test]
fn summary_with_violation_holds_and_skipped() {
    let md = render_summary(&fixtures::passing_summary());
    expect![[r#"
        # racelab summary

        Overall: **OK** (3 runs: 2 met, 0 not met, 1 skipped, 0 errors)

        Every run (its row, details, replay token and trace): [runs.md](runs.md); the same as a page: [summary.html](summary.html)

        ## Overview

        Runs per scenario × variant and backend group that met (✓) or missed (✗) their expectation, were skipped (–) or errored (!), and the shortest interleaving any of them recorded, with how many distinct ones they recorded (each linked from its run in [runs.md](runs.md)).

        | scenario | variant | expected | model | fs | nfs | shortest trace |
        | --- | --- | --- | --- | --- | --- | --- |
        | lockfile | naive | violation (mutual_exclusion) | 1✓ |  | 1– | [8 steps](traces/ta29ed72c9e05ac34.txt) |
        | lockfile | fenced | holds |  | 1✓ |  | – |

        Backend groups:

        - model: model
        - fs: fs:ext4
        - nfs: fs:nfs

        ## Reproduction rates on real systems

        Hits of runs per backend; invariants with the same rates everywhere share a row. Each rate's 95% interval is in [runs.md](runs.md).

        | scenario | variant | run | invariant | fs:ext4 |
        | --- | --- | --- | --- | --- |
        | lockfile | fenced | stress |  | 0/500 |

        ## Skipped

        - **1 skipped**: no NFS mount found\
          set RACELAB_NFS_DIR to a directory on an NFS mount to enable it
          - lockfile/naive/stress: fs:nfs

        ## Model assumptions

        What a model verdict (`proof`, `bounded`, `budget`) holds under; variants that state the same share an entry.

        - lockfile/naive
          - faults: none declared
          - atomicity: every world operation is one step
    "#]]
    .assert_eq(&md);
}

#[test]
fn failing_summary_says_so_and_marks_rows() {
    let md = render_summary(&fixtures::failing_summary());
    assert!(md.contains("Overall: **FAILED** (6 runs: 2 met, 2 not met, 1 skipped, 1 error)"));
    // runs.md has a row per run; the missed one is marked.
    let runs = reports::markdown::render_runs(&fixtures::failing_summary());
    let missed = runs
        .lines()
        .find(|l| l.starts_with("| queue | at_least_once | loom"))
        .unwrap();
    assert!(missed.ends_with("| ✗ |"), "{missed}");
    // summary.md shows the runs that need attention in full, the error with its reason,
    // escaped: the angle brackets must not open an HTML tag.
    assert!(md.contains("## Not met and errors\n"), "{md}");
    assert!(md.contains("### queue/at_least_once/loom/model\n"), "{md}");
    assert!(md.contains("\\<is the server running?>"), "{md}");
}

#[test]
fn values_cannot_break_out_of_table_cells_or_fences() {
    let mut s = fixtures::passing_summary();
    s.results[0].variant = "a|b\nc".to_string();
    s.results[0].replay = Some("x```y".to_string());
    let md = render_summary(&s);
    assert!(md.contains("| lockfile | a\\|b c | violation"), "{md}");
    let runs = reports::markdown::render_runs(&s);
    assert!(
        runs.contains("| lockfile | a\\|b c | shuttle-pct |"),
        "{runs}"
    );
    assert!(runs.contains("````text\nx```y\n````\n"), "{runs}");
}

/// runs.md: every run with details, each linking its trace file instead of inlining it.
#[test]
fn runs_md_has_every_run_s_details_and_links_its_trace() {
    let s = fixtures::passing_summary();
    let runs = reports::markdown::render_runs(&s);
    assert!(runs.starts_with("# racelab runs\n"));
    assert!(
        runs.contains("### lockfile/naive/shuttle-pct/model")
            && runs.contains("### lockfile/fenced/stress/fs:ext4"),
        "{runs}"
    );
    assert!(
        runs.contains("- coverage: budget: 1234 schedules (PCT depth 3, seed 0x5eed)"),
        "{runs}"
    );
    let key = reports::trace_key(s.results[0].trace.as_ref().unwrap());
    assert!(runs.contains(&format!("Trace (8 steps; mutual_exclusion broke: holders(section) \\<= 1): [traces/{key}.txt](traces/{key}.txt)")), "{runs}");
    assert!(!runs.contains("-> EEXIST"), "the trace is not inlined");
}
