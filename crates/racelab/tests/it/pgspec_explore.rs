//! The interleavings an isolation spec does not list: which ones exist and which a budget
//! picks, their outcomes on the model and on the real server (compared interleaving by
//! interleaving), the findings' tokens replaying the same interleaving, and tokens of another
//! spec or an edited spec refused with a clear error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use racelab_real::pgspec::explore::{self, Outcome};
use racelab_real::pgspec::explore_cli::{self, Settings};
use racelab_real::pgspec::suite;
use racelab_real::pgspec::{self, parse::Spec};

fn spec_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios/pg-isolation/specs")
        .join(format!("{name}.spec"))
}

fn load(name: &str) -> (String, Spec) {
    let path = spec_file(name);
    (
        std::fs::read_to_string(&path).unwrap(),
        pgspec::load(&path).unwrap(),
    )
}

fn settings(budget: usize) -> Settings {
    Settings {
        budget,
        seed: 1,
        step_wait: Duration::from_secs(10),
    }
}

/// nowait-2 lists 3 of the 10 merges of its sessions' steps (s1: a b; s2: a b c), so 7 are
/// unlisted; with a budget of 3 a seeded sample of 3 distinct unlisted ones runs, the same for
/// the same seed; a spec that lists no permutation has none left.
#[test]
fn unlisted_interleavings_are_the_other_merges_of_the_listed_sessions_steps() {
    let (_, spec) = load("nowait-2");
    let every = explore::plan(&spec, 100, 1);
    assert_eq!(every.listed.len(), 3);
    assert_eq!(every.unlisted_total, 7);
    assert!(every.exhaustive);
    assert_eq!(every.unlisted.len(), 7);
    let key = |p: &[pgspec::parse::PermStep]| explore::names(&spec, p);
    let listed: Vec<String> = every.listed.iter().map(|p| key(p)).collect();
    let mut unlisted: Vec<String> = every.unlisted.iter().map(|p| key(p)).collect();
    assert!(unlisted.iter().all(|u| !listed.contains(u)));
    unlisted.sort();
    unlisted.dedup();
    assert_eq!(unlisted.len(), 7);

    let sample = explore::plan(&spec, 3, 42);
    assert!(!sample.exhaustive);
    assert_eq!(sample.unlisted_total, 7);
    let names: Vec<String> = sample.unlisted.iter().map(|p| key(p)).collect();
    assert_eq!(names.len(), 3);
    assert!(names.iter().all(|n| unlisted.contains(n)));
    let again: Vec<String> = explore::plan(&spec, 3, 42)
        .unlisted
        .iter()
        .map(|p| key(p))
        .collect();
    assert_eq!(names, again);

    let (_, all) = load("simple-write-skew");
    let none = explore::plan(&all, 100, 1);
    assert!(none.listed.is_empty() && none.unlisted.is_empty());
}

/// On the model: nowait-2's listed permutations all end with s2's NOWAIT lock failing or
/// not being tried while s1 holds the row; an unlisted order where s1 commits first gives an
/// outcome without that error: a finding, whose token names that very interleaving and
/// replays it. The token is refused for another spec and for an edited spec.
#[test]
fn a_new_outcome_on_the_model_is_a_finding_with_a_token_that_replays_it() {
    let case = suite::case(&spec_file("nowait-2")).unwrap();
    let ex = explore_cli::on_model(&case, settings(100)).unwrap();
    assert_eq!((ex.ran, ex.stalled, ex.failed_count), (7, 0, 0));
    assert_eq!(ex.findings.len(), 1, "{:#?}", ex.findings);
    let f = &ex.findings[0];
    assert_eq!(f.outcome.describe(), "no errors; foo [(1,x)]");
    assert!(f
        .differences
        .iter()
        .any(|d| d.contains("no error s2b 55P03 lock_not_available")));
    assert_eq!(ex.seen + f.count, 7);

    let (source, spec) = load("nowait-2");
    let perm = explore::decode(&f.token, "nowait-2", &source, &spec).unwrap();
    assert_eq!(explore::names(&spec, &perm), f.interleaving);

    let (other_source, other) = load("nowait-3");
    let wrong = explore::decode(&f.token, "nowait-3", &other_source, &other).unwrap_err();
    assert!(
        wrong.contains("recorded for isolation spec `nowait-2`, not `nowait-3`"),
        "{wrong}"
    );
    let edited = format!("{source}\n# edited\n");
    let stale = explore::decode(&f.token, "nowait-2", &edited, &spec).unwrap_err();
    assert!(stale.contains("earlier version"), "{stale}");
    let garbage = explore::decode("rl1_AAAA", "nowait-2", &source, &spec).unwrap_err();
    assert!(garbage.contains("too short"), "{garbage}");
}

/// A step that waits on a session with no step before it (nowait-3's s2 waiting on s1's row
/// lock while s1's commit comes after s2's next step) is cancelled at once and counted as
/// stalled, never compared; no run times out.
#[test]
fn a_stalled_interleaving_is_counted_apart_on_the_model() {
    let case = suite::case(&spec_file("nowait-3")).unwrap();
    let ex = explore_cli::on_model(&case, settings(1000)).unwrap();
    assert!(ex.exhaustive);
    assert_eq!(ex.ran as u64, ex.unlisted_total);
    assert!(ex.stalled > 0);
    assert_eq!(ex.timed_out, 0);
    assert_eq!(
        ex.seen + ex.stalled + ex.findings.iter().map(|f| f.count).sum::<usize>(),
        ex.ran
    );
}

/// The server `cargo xtask db up` started; a test that needs it and finds none fails.
fn pg_url() -> String {
    std::env::var("RACELAB_POSTGRES_URL").ok().filter(|u| !u.is_empty()).expect("RACELAB_POSTGRES_URL is not set: start a server with `eval \"$(cargo xtask db up --env)\"`")
}

/// On PostgreSQL: every unlisted interleaving of read-write-unique (SERIALIZABLE inserts of
/// the same key) has the same outcome on the model as on the server, stalled ones included;
/// each finding is reproduced on the server by its token.
#[test]
fn unlisted_interleavings_on_postgres_agree_with_the_model() {
    let db = suite::Database::create(&pg_url(), "racelab_pgspec_explore1").unwrap();
    let case = suite::case(&spec_file("read-write-unique")).unwrap();
    let server = explore_cli::on_server(&db, &case, settings(100)).unwrap();
    let model = explore_cli::on_model(&case, settings(100)).unwrap();
    assert_eq!(server.ran, 18);
    assert!(server.stalled > 0);
    assert_eq!(server.timed_out + server.failed_count, 0);
    assert_eq!(explore_cli::agreement(&server, &model), (18, 18));
    assert!(!server.findings.is_empty());
    let (source, spec) = load("read-write-unique");
    for f in &server.findings {
        let perm = explore::decode(&f.token, "read-write-unique", &source, &spec).unwrap();
        let mut c = suite::ServerConnector {
            db: &db,
            test: "read-write-unique".into(),
            spec: &spec,
        };
        let rec = explore::run_all(&mut c, &spec, &[perm], Duration::from_secs(10))
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(rec.fatal, None);
        let outcome = Outcome {
            errors: rec.trace.errors.iter().cloned().collect(),
            tables: rec.trace.tables.clone().unwrap(),
        };
        assert_eq!(outcome, f.outcome);
        assert!(rec
            .output
            .starts_with(&format!("\nstarting permutation: {}\n", f.interleaving)));
    }
}

/// On PostgreSQL: deadlock-simple's unlisted orders include ones where a step waits on a
/// session with no step before it (stalled: cancelled at once, not after a timeout) and ones
/// where the other session is the deadlock victim (a finding); nothing times out.
#[test]
fn deadlocks_and_stalls_in_unlisted_interleavings_on_postgres() {
    let db = suite::Database::create(&pg_url(), "racelab_pgspec_explore2").unwrap();
    let case = suite::case(&spec_file("deadlock-simple")).unwrap();
    let ex = explore_cli::on_server(&db, &case, settings(100)).unwrap();
    assert_eq!(ex.ran as u64, ex.unlisted_total);
    assert!(ex.stalled > 0);
    assert_eq!(ex.timed_out + ex.failed_count + ex.unconfirmed, 0);
    assert!(
        ex.findings.iter().any(|f| f
            .outcome
            .errors
            .iter()
            .any(|(step, code)| step == "s1ae" && code == "40P01")),
        "{:#?}",
        ex.findings
    );
}
