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

        | scenario | variant | engine | backend | expected | outcome | coverage | schedules | seconds | first failure after | met |
        | --- | --- | --- | --- | --- | --- | :---: | ---: | ---: | ---: | :---: |
        | lockfile | naive | shuttle-pct | model | violation (mutual_exclusion) | violation (mutual_exclusion) | budget | 1234 | 2.50 | 17 | ✓ |
        | lockfile | fenced | stress | fs:ext4 | holds | holds | budget | 500 | 20.12 | – | ✓ |
        | lockfile | naive | stress | fs:nfs | violation (mutual_exclusion) | skipped | – | 0 | 0.00 | – | – |

        ## Model assumptions

        What a model verdict (`proof`, `bounded`, `budget`) holds under, per variant.

        - lockfile/naive
          - faults: none declared
          - atomicity: every world operation is one step

        ## Reproduction rates on real systems

        | scenario | variant | run | backend | invariant | rate |
        | --- | --- | --- | --- | --- | --- |
        | lockfile | fenced | stress | fs:ext4 |  | 0/500 runs (0.00%, 95% CI 0.00%-0.76%) |

        ## Skipped and errors

        - **skipped** lockfile/naive/stress/fs:nfs: no NFS mount found\
          set RACELAB_NFS_DIR to a directory on an NFS mount to enable it

        Every run's details (coverage, bound, replay tokens, traces): [runs.md](runs.md)
    "#]]
    .assert_eq(&md);
}

#[test]
fn failing_summary_says_so_and_marks_rows() {
    let md = render_summary(&fixtures::failing_summary());
    assert!(md.contains("Overall: **FAILED** (6 runs: 2 met, 2 not met, 1 skipped, 1 error)"));
    let missed = md
        .lines()
        .find(|l| l.starts_with("| queue | at_least_once | loom"))
        .unwrap();
    assert!(missed.ends_with("| ✗ |"), "{missed}");
    // Reasons are escaped: the angle brackets must not open an HTML tag.
    assert!(md.contains("\\<is the server running?>"), "{md}");
}

#[test]
fn values_cannot_break_out_of_table_cells_or_fences() {
    let mut s = fixtures::passing_summary();
    s.results[0].variant = "a|b\nc".to_string();
    s.results[0].replay = Some("x```y".to_string());
    let md = render_summary(&s);
    assert!(md.contains("| lockfile | a\\|b c | shuttle-pct |"), "{md}");
    let runs = reports::markdown::render_runs(&s);
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
