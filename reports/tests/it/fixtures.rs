//! Hand-written results that look like what the harness produces for the lockfile and queue
//! scenarios, shared by every test so the renderers are compared on the same data.

use reports::{
    Coverage, Env, Finding, Outcome, Rate, RunResult, Summary, Trace, TraceStep, Verdict,
};

/// 2023-11-14T22:13:20Z: virtual clocks start at a real-looking epoch time.
const T0: i64 = 1_700_000_000_000;

fn step(actor: Option<usize>, dt_ms: i64, operation: &str, result: &str, line: u32) -> TraceStep {
    TraceStep {
        actor,
        time_ms: T0 + dt_ms,
        operation: operation.to_string(),
        result: result.to_string(),
        broke: Vec::new(),
        line,
    }
}

/// The classic stale-lock race: qrunner3 decides the lock qrunner1 holds is stale after the
/// clock jumps, removes it, and qrunner2 gets in while qrunner1 is still inside.
pub fn lockfile_trace() -> Trace {
    let mut steps = vec![
        step(Some(0), 0, "open(tmp, O_CREAT|O_EXCL)", "ok", 12),
        step(Some(0), 0, "link(tmp, LOCKFILE)", "ok", 13),
        step(Some(1), 1, "link(tmp, LOCKFILE)", "EEXIST", 13),
        step(None, 3_000, "clock.advance(3s)", "", 0),
        step(
            Some(2),
            3_000,
            "stat(LOCKFILE).mtime < now - 2s",
            "true",
            17,
        ),
        step(Some(2), 3_001, "unlink(LOCKFILE)", "ok", 18),
        step(Some(1), 3_002, "link(tmp, LOCKFILE)", "ok", 13),
        step(
            Some(1),
            3_002,
            "write(section, \"a payload long enough to be cut short\")",
            "ok",
            21,
        ),
    ];
    steps[6].broke = vec!["mutual_exclusion".to_string()];
    Trace {
        scenario: "lockfile".to_string(),
        variant: "naive".to_string(),
        actors: vec!["qrunner1".into(), "qrunner2".into(), "qrunner3".into()],
        steps,
        verdict: "mutual_exclusion broke: holders(section) <= 1".to_string(),
    }
}

/// A run with every optional field empty; tests fill in what they need.
pub fn run(scenario: &str, variant: &str, engine: &str, backend: &str) -> RunResult {
    RunResult {
        outcome: Outcome::Holds,
        met: true,
        ..RunResult::unmeasured(
            scenario,
            variant,
            engine,
            backend.to_string(),
            (Verdict::Holds, Vec::new()),
        )
    }
}

/// An expected violation, found, with its trace and a second finding.
pub fn violation_met() -> RunResult {
    let mut r = run("lockfile", "naive", "shuttle-pct", "model");
    r.expected = Verdict::Violation;
    r.expected_invariants = vec!["mutual_exclusion".to_string()];
    r.outcome = Outcome::Violation;
    r.invariant = Some("mutual_exclusion".to_string());
    r.schedules = 1234;
    r.seconds = 2.5;
    r.first_failure_after = Some(17);
    r.replay = Some("rl1:lockfile:naive:AAECAwQFBgc".to_string());
    r.switches = Some(5);
    r.shrunk_switches = Some(2);
    r.bound = Some("preemption bound 2".to_string());
    r.coverage = Some(Coverage::Budget);
    r.covers = Some("1234 schedules (PCT depth 3, seed 0x5eed)".to_string());
    r.assumptions = vec![
        "faults: none declared".to_string(),
        "atomicity: every world operation is one step".to_string(),
    ];
    r.findings = vec![
        Finding {
            original: String::new(),
            invariant: "mutual_exclusion".to_string(),
            replay: "rl1:lockfile:naive:AAECAwQFBgc".to_string(),
            after: 17,
            switches: 5,
            shrunk_switches: 2,
        },
        Finding {
            original: String::new(),
            invariant: "no_orphan_tmp".to_string(),
            replay: "rl1:lockfile:naive:CAkKCwwN".to_string(),
            after: 40,
            switches: 3,
            shrunk_switches: 3,
        },
    ];
    r.trace = Some(lockfile_trace());
    r
}

/// A stress run on a real filesystem that never saw the race.
pub fn holds_met() -> RunResult {
    let mut r = run("lockfile", "fenced", "stress", "fs:ext4");
    r.schedules = 500;
    r.seconds = 20.125;
    r.bound = Some("500 runs or 20s".to_string());
    r.coverage = Some(Coverage::Budget);
    r.covers = Some("500 free runs".to_string());
    r.rate = Some(Rate {
        hits: 0,
        runs: 500,
        low: 0.0,
        high: 0.0076,
    });
    r.env = Some(Env {
        fs_type: Some("ext4".to_string()),
        mount_options: Some("rw,relatime".to_string()),
        ..Env::default()
    });
    r
}

/// A backend that is not set up on this machine.
pub fn skipped() -> RunResult {
    let mut r = run("lockfile", "naive", "stress", "fs:nfs");
    r.expected = Verdict::Violation;
    r.expected_invariants = vec!["mutual_exclusion".to_string()];
    r.outcome = Outcome::Skipped;
    r.met = false;
    r.reason = Some(
        "no NFS mount found\nset RACELAB_NFS_DIR to a directory on an NFS mount to enable it"
            .to_string(),
    );
    r
}

/// An expected bug that the search did not find.
pub fn violation_missed() -> RunResult {
    let mut r = run("queue", "at_least_once", "loom", "model");
    r.expected = Verdict::Violation;
    r.expected_invariants = vec!["no_duplicate_delivery".to_string()];
    r.outcome = Outcome::Holds;
    r.met = false;
    r.exhaustive = true;
    r.coverage = Some(Coverage::Bounded);
    r.covers = Some("every schedule within preemption bound 2".to_string());
    r.schedules = 96;
    r.seconds = 0.75;
    r.bound = Some("preemption bound 2".to_string());
    r
}

/// A variant that should be safe but is not: the regression CI must show with its token.
pub fn violation_unexpected() -> RunResult {
    let mut r = run("queue", "exactly_once", "shuttle-random", "model");
    r.outcome = Outcome::Violation;
    r.invariant = Some("no_duplicate_delivery".to_string());
    r.met = false;
    r.schedules = 310;
    r.seconds = 1.0;
    r.first_failure_after = Some(310);
    r.replay = Some("rl1:queue:exactly_once:EBESExQV".to_string());
    r.trace = Some(Trace {
        scenario: "queue".to_string(),
        variant: "exactly_once".to_string(),
        actors: vec!["consumer1".into(), "consumer2".into()],
        steps: vec![
            step(Some(0), 0, "recv()", "msg#1", 8),
            step(Some(1), 30_000, "recv()", "msg#1", 8),
            TraceStep {
                broke: vec!["no_duplicate_delivery".to_string()],
                ..step(Some(0), 30_001, "ack(msg#1)", "ok", 9)
            },
        ],
        verdict: "no_duplicate_delivery broke: deliveries(msg#1) <= 1".to_string(),
    });
    r
}

/// A backend that failed while running.
pub fn errored() -> RunResult {
    let mut r = run("queue", "at_least_once", "replay", "db:postgres");
    r.expected = Verdict::Violation;
    r.outcome = Outcome::Error;
    r.met = false;
    r.reason = Some("connection refused (127.0.0.1:5432) <is the server running?>".to_string());
    r
}

/// Every run met its expectation or was skipped: one violation, one holds, one skipped.
pub fn passing_summary() -> Summary {
    Summary {
        ok: true,
        results: vec![violation_met(), holds_met(), skipped()],
        shard: None,
    }
}

/// The passing runs plus, in a second scenario, a missed violation, an unexpected one and an
/// error.
pub fn failing_summary() -> Summary {
    let mut s = passing_summary();
    s.ok = false;
    s.results.push(violation_missed());
    s.results.push(violation_unexpected());
    s.results.push(errored());
    s
}
