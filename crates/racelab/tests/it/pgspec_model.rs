//! PostgreSQL isolation specs on the model database: lock waits and deadlocks are seen through
//! the model (no server, no timing), multi-statement steps behave as PostgreSQL's implicit
//! transaction blocks, a spec outside the model's subset is refused with the reason, and the
//! copied suite agrees with PostgreSQL's expected outputs at least as often as measured.

use std::path::Path;
use std::time::{Duration, Instant};

use expect_test::expect;
use racelab_real::pgspec::model::ModelSession;
use racelab_real::pgspec::suite::{self, Verdict};
use racelab_real::pgspec::{self, run};

fn on_model(src: &str) -> run::Outcome {
    let spec = pgspec::parse_named("test.spec", src).unwrap();
    let (control, sessions) = ModelSession::connect(spec.sessions.len());
    run::run_spec(&spec, control, sessions, Duration::from_secs(60))
}

/// The second UPDATE of a row waits (the model answers the lock-wait question) and completes
/// after the COMMIT; crossing updates deadlock. PostgreSQL (checked on 15) prints the same for
/// the first permutation; in the second it aborts the *earlier* waiter (s1u2), whose
/// deadlock_timeout fires first, where the model aborts the requester (docs/isolation.md).
#[test]
fn a_blocked_step_and_a_deadlock_are_seen_through_the_model() {
    let outcome = on_model(
        "setup { CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 10), (2, 20); }\n\
         teardown { DROP TABLE t; }\n\
         session s1\nsetup { BEGIN; }\nstep s1u1 { UPDATE t SET v = v + 1 WHERE id = 1; }\n\
         step s1u2 { UPDATE t SET v = v + 1 WHERE id = 2; }\nstep s1c { COMMIT; }\n\
         session s2\nsetup { BEGIN; }\nstep s2u2 { UPDATE t SET v = v + 2 WHERE id = 2; }\n\
         step s2u1 { UPDATE t SET v = v + 2 WHERE id = 1; }\nstep s2c { COMMIT; }\n\
         session s3\nstep s3s { SELECT * FROM t ORDER BY id; }\n\
         permutation s1u1 s2u1 s1c s2c s3s\npermutation s1u1 s2u2 s1u2 s2u1 s1c s2c s3s\n",
    );
    assert_eq!(outcome.fatal, None);
    assert_eq!(outcome.permutations, 2);
    expect![[r#"
        Parsed test spec with 3 sessions

        starting permutation: s1u1 s2u1 s1c s2c s3s
        step s1u1: UPDATE t SET v = v + 1 WHERE id = 1;
        step s2u1: UPDATE t SET v = v + 2 WHERE id = 1; <waiting ...>
        step s1c: COMMIT;
        step s2u1: <... completed>
        step s2c: COMMIT;
        step s3s: SELECT * FROM t ORDER BY id;
        id| v
        --+--
         1|13
         2|20
        (2 rows)


        starting permutation: s1u1 s2u2 s1u2 s2u1 s1c s2c s3s
        step s1u1: UPDATE t SET v = v + 1 WHERE id = 1;
        step s2u2: UPDATE t SET v = v + 2 WHERE id = 2;
        step s1u2: UPDATE t SET v = v + 1 WHERE id = 2; <waiting ...>
        step s2u1: UPDATE t SET v = v + 2 WHERE id = 1;
        ERROR:  deadlock detected
        step s1u2: <... completed>
        step s1c: COMMIT;
        step s2c: COMMIT;
        step s3s: SELECT * FROM t ORDER BY id;
        id| v
        --+--
         1|11
         2|21
        (2 rows)

    "#]]
    .assert_eq(&outcome.output);
}

/// A permutation that sends a step to a session whose previous step waits for a lock nobody
/// will release: isolationtester cancels the waiting step after the step timeout; the model
/// knows at once that nothing can release it and prints the same (byte for byte what
/// PostgreSQL 15 printed with `--step-timeout 1`), the implicit block of the two-statement step
/// rolled back.
#[test]
fn a_step_nothing_can_release_is_cancelled_as_after_the_step_timeout() {
    let spec = pgspec::parse_named(
        "cancel.spec",
        "setup { CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 10); }\n\
         teardown { DROP TABLE t; }\n\
         session s1\nstep s1b { BEGIN; }\nstep s1u { UPDATE t SET v = 11 WHERE id = 1; }\nstep s1c { COMMIT; }\n\
         session s2\nstep s2u { UPDATE t SET v = 12 WHERE id = 1; SELECT v FROM t; }\nstep s2s { SELECT v FROM t; }\n\
         permutation s1b s1u s2u s2s s1c s2s\n",
    )
    .unwrap();
    let (control, sessions) = ModelSession::connect(spec.sessions.len());
    let outcome = run::run_spec(&spec, control, sessions, Duration::from_secs(1));
    assert_eq!(outcome.fatal, None);
    expect![[r#"
        Parsed test spec with 2 sessions

        starting permutation: s1b s1u s2u s2s s1c s2s
        step s1b: BEGIN;
        step s1u: UPDATE t SET v = 11 WHERE id = 1;
        step s2u: UPDATE t SET v = 12 WHERE id = 1; SELECT v FROM t; <waiting ...>
        isolationtester: canceling step s2u after 1 seconds
        step s2u: <... completed>
        ERROR:  canceling statement due to user request
        step s2s: SELECT v FROM t;
         v
        --
        10
        (1 row)

        step s1c: COMMIT;
        step s2s: SELECT v FROM t;
         v
        --
        11
        (1 row)

    "#]]
    .assert_eq(&outcome.output);
}

/// Byte for byte what PostgreSQL 15 printed for the same spec: a failing statement of a
/// multi-statement step rolls back the ones before it (an implicit transaction block), and
/// warnings come where libpq parses them (up to the first result: before the step line).
#[test]
fn a_multi_statement_step_is_one_transaction_and_warnings_come_in_libpqs_order() {
    let outcome = on_model(
        "setup { CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 10), (2, 20); }\n\
         teardown { DROP TABLE t; }\n\
         session s1\nstep m { UPDATE t SET v = 0 WHERE id = 2; INSERT INTO t VALUES (1, 0); }\n\
         step s { SELECT * FROM t ORDER BY id; }\nstep b { BEGIN; }\nstep x { COMMIT; COMMIT; ROLLBACK; }\n\
         permutation m s b b x\n",
    );
    assert_eq!(outcome.fatal, None);
    expect![[r#"
        Parsed test spec with 1 sessions

        starting permutation: m s b b x
        step m: UPDATE t SET v = 0 WHERE id = 2; INSERT INTO t VALUES (1, 0);
        ERROR:  duplicate key value violates unique constraint "t_pkey"
        step s: SELECT * FROM t ORDER BY id;
        id| v
        --+--
         1|10
         2|20
        (2 rows)

        step b: BEGIN;
        s1: WARNING:  there is already a transaction in progress
        step b: BEGIN;
        s1: WARNING:  there is no transaction in progress
        step x: COMMIT; COMMIT; ROLLBACK;
        s1: WARNING:  there is no transaction in progress
    "#]]
    .assert_eq(&outcome.output);
}

/// A spec with one statement outside the model's subset is not run at all; the verdict names
/// the step and the first construct the model lacks.
#[test]
fn a_spec_outside_the_subset_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, step: &str| {
        let path = dir.path().join(format!("{name}.spec"));
        std::fs::write(
            &path,
            format!("setup {{ CREATE TABLE t (id int PRIMARY KEY); }}\nteardown {{ DROP TABLE t; }}\nsession s1\nstep a {{ BEGIN; }}\nstep b {{ {step} }}\nstep c {{ COMMIT; }}\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join(format!("{name}.out")), "").unwrap();
        suite::run_case_on_model(
            &suite::case(&path).unwrap(),
            &dir.path().join("results"),
            Duration::from_secs(300),
        )
    };
    let cases = [
        ("lock", "LOCK TABLE t;", "step b: LOCK"),
        (
            "advisory",
            "SELECT pg_advisory_lock(1);",
            "step b: SELECT without exactly one table in FROM",
        ),
        (
            "function",
            "SELECT lower(id) FROM t;",
            "step b: function call `lower(…)`",
        ),
        ("index", "CREATE INDEX ON t (id);", "step b: CREATE INDEX"),
        (
            "timeout",
            "SET deadlock_timeout = '10ms';",
            "step b: SET deadlock_timeout",
        ),
        (
            "uncommitted",
            "SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED;",
            "step b: ISOLATION LEVEL READ UNCOMMITTED",
        ),
    ];
    for (name, step, why) in cases {
        let report = write(name, step);
        match &report.verdict {
            Verdict::Unsupported(reason) => assert!(
                reason.starts_with(&format!("not supported on the model: {why}")),
                "{name}: {reason}"
            ),
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(report.permutations, 0, "{name} must not run");
    }
}

/// The copied suite (the schedule's specs and the prepared-transaction ones, as `racelab
/// isolation` runs it) on the model: every spec the model runs agrees with PostgreSQL's
/// expected output. Measured: 19 of 117 within the model's subset (12 before the model had
/// FOR KEY SHARE / FOR NO KEY UPDATE and savepoints), all 19 agree, in well under a second
/// (debug build).
#[test]
fn postgres_suite_on_the_model_agrees_at_least_as_measured() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/pg-isolation");
    let cases = suite::cases_from_schedule(
        &dir,
        &dir.join("isolation_schedule"),
        &["prepared-transactions", "prepared-transactions-cic"],
    )
    .unwrap();
    assert_eq!(cases.len(), 117);
    let results = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let reports: Vec<_> = cases
        .iter()
        .map(|c| suite::run_case_on_model(c, results.path(), Duration::from_secs(300)))
        .collect();
    let agree: Vec<&str> = reports
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Matches(_)))
        .map(|r| r.name.as_str())
        .collect();
    let differ: Vec<String> = reports
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Differs { .. } | Verdict::Error(_)))
        .map(|r| format!("{}: {:?}", r.name, r.verdict))
        .collect();
    let unsupported = reports
        .iter()
        .filter(|r| matches!(&r.verdict, Verdict::Unsupported(why) if why.starts_with("not supported on the model: ")))
        .count();
    eprintln!(
        "model: {} agree, {} differ, {unsupported} not supported, {:.2} s",
        agree.len(),
        differ.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(agree.len() + differ.len() + unsupported, 117);
    assert!(
        agree.len() >= 19,
        "agreeing: {agree:?}\ndiffering: {differ:#?}"
    );
    for name in [
        "nowait",
        "nowait-2",
        "skip-locked",
        "skip-locked-2",
        "simple-write-skew",
        "referential-integrity",
        "lock-update-traversal",
        "delete-abort-savept",
        "delete-abort-savept-2",
        "aborted-keyrevoke",
        "multixact-no-deadlock",
        "tuplelock-conflict",
        "tuplelock-upgrade-no-deadlock",
    ] {
        assert!(agree.contains(&name), "{name} should agree: {differ:#?}");
    }
}

/// Every interleaving of the 12 suite specs the model runs (their `permutation` lines
/// removed), and of the six SERIALIZABLE ones rewritten to REPEATABLE READ and to READ
/// COMMITTED: 24 specs, 739 permutations, many of them impossible ones that end in a cancelled
/// step. The expected files are what PostgreSQL 15's own isolationtester printed for them on
/// a server started by `cargo xtask db up` (PGISOLATIONTIMEOUT=2; see the data's README).
#[test]
fn every_interleaving_of_the_supported_specs_prints_what_postgres_printed() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/data/pg-isolation-interleavings");
    let mut specs: Vec<_> = std::fs::read_dir(dir.join("specs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    specs.sort();
    let results = tempfile::tempdir().unwrap();
    let mut permutations = 0;
    for spec in &specs {
        let case = suite::case(spec).unwrap();
        let report = suite::run_case_on_model(&case, results.path(), Duration::from_secs(2));
        match &report.verdict {
            Verdict::Matches(_) => {}
            Verdict::Differs { diff, .. } => panic!("{}:\n{diff}", case.name),
            other => panic!("{}: {other:?}", case.name),
        }
        permutations += report.permutations;
    }
    assert_eq!(specs.len(), 24);
    assert_eq!(permutations, 739);
}
