//! The JUnit XML report.

use expect_test::expect;
use quick_junit::{NonSuccessKind, Report, TestCaseStatus};
use reports::junit::render_junit;

use crate::fixtures;

#[test]
fn one_suite_per_scenario_one_case_per_run() {
    let xml = render_junit(&fixtures::failing_summary());
    expect![[r#"
        <?xml version="1.0" encoding="UTF-8"?>
        <testsuites name="racelab" tests="6" failures="2" errors="1">
            <testsuite name="lockfile" tests="3" disabled="1" errors="0" failures="0">
                <testcase name="naive/shuttle-pct/model" classname="lockfile" time="2.500">
                </testcase>
                <testcase name="fenced/stress/fs:ext4" classname="lockfile" time="20.125">
                </testcase>
                <testcase name="naive/stress/fs:nfs" classname="lockfile" time="0.000">
                    <skipped message="no NFS mount found">no NFS mount found
        set RACELAB_NFS_DIR to a directory on an NFS mount to enable it</skipped>
                </testcase>
            </testsuite>
            <testsuite name="queue" tests="3" disabled="0" errors="1" failures="2">
                <testcase name="at_least_once/loom/model" classname="queue" time="0.750">
                    <failure message="expected violation (no_duplicate_delivery), got holds" type="holds">queue/at_least_once [loom, model]: holds, expected violation (no_duplicate_delivery); 96 schedules (exhaustive within preemption bound 2) in 0.75s -&gt; NOT MET
        </failure>
                </testcase>
                <testcase name="exactly_once/shuttle-random/model" classname="queue" time="1.000">
                    <failure message="expected holds, got violation (no_duplicate_delivery); replay: rl1:queue:exactly_once:EBESExQV" type="violation">queue/exactly_once [shuttle-random, model]: violation (no_duplicate_delivery), expected holds; 310 schedules in 1.00s, first failure after 310 -&gt; NOT MET
        replay: rl1:queue:exactly_once:EBESExQV

        step      time | consumer1        | consumer2
        ---------------+------------------+----------------
           1   +0.000s | recv() -&gt; msg#1
           2  +30.000s |                  | recv() -&gt; msg#1
           3  +30.001s | ack(msg#1) -&gt; ok
           x no_duplicate_delivery broke
        ---------------+------------------+----------------
        verdict: no_duplicate_delivery broke: deliveries(msg#1) &lt;= 1
        </failure>
                </testcase>
                <testcase name="at_least_once/replay/db:postgres" classname="queue" time="0.000">
                    <error message="connection refused (127.0.0.1:5432) &lt;is the server running?&gt;" type="error">connection refused (127.0.0.1:5432) &lt;is the server running?&gt;</error>
                </testcase>
            </testsuite>
        </testsuites>
    "#]]
    .assert_eq(&xml);
}

#[test]
fn statuses_survive_a_round_trip_through_a_junit_reader() {
    let xml = render_junit(&fixtures::failing_summary());
    let report = Report::deserialize_from_str(&xml).expect("valid JUnit XML");
    assert_eq!((report.tests, report.failures, report.errors), (6, 2, 1));
    let suites: Vec<&str> = report.test_suites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(suites, ["lockfile", "queue"]);
    let kinds: Vec<(String, &str)> = report
        .test_suites
        .iter()
        .flat_map(|s| &s.test_cases)
        .map(|c| (c.name.as_str().to_string(), kind(&c.status)))
        .collect();
    assert_eq!(
        kinds,
        [
            ("naive/shuttle-pct/model".to_string(), "success"),
            ("fenced/stress/fs:ext4".to_string(), "success"),
            ("naive/stress/fs:nfs".to_string(), "skipped"),
            ("at_least_once/loom/model".to_string(), "failure"),
            ("exactly_once/shuttle-random/model".to_string(), "failure"),
            ("at_least_once/replay/db:postgres".to_string(), "error"),
        ]
    );
}

fn kind(status: &TestCaseStatus) -> &'static str {
    match status {
        TestCaseStatus::Success { .. } => "success",
        TestCaseStatus::Skipped { .. } => "skipped",
        TestCaseStatus::NonSuccess {
            kind: NonSuccessKind::Failure,
            ..
        } => "failure",
        TestCaseStatus::NonSuccess {
            kind: NonSuccessKind::Error,
            ..
        } => "error",
    }
}
