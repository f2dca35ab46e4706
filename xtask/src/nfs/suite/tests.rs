//! Tests of the NFS part's plan and rows.

use super::guest::*;
use super::plan::*;
use super::rows::*;
use super::*;

fn row(scenario: &str, variant: &str, backend: &str) -> RunResult {
    let json = format!(
        r#"{{"scenario":"{scenario}","variant":"{variant}","engine":"forced-replay","backend":"{backend}","faults":null,"expected":"violation","outcome":"violation","invariant":"mutual_exclusion","exhaustive":false,"schedules":100,"seconds":1.0,"first_failure_after":1,"replay":"rl1_x","met":true}}"#
    );
    serde_json::from_str(&json).expect("a valid row")
}

#[test]
fn two_client_targets_get_native_random_schedules_on_both_nfs_versions() {
    let all = SCENARIOS.to_vec();
    let p = passes("uml", &all);
    assert_eq!(
        p.iter().map(|x| (x.name, x.engines)).collect::<Vec<_>>(),
        [
            ("one-client", "loom,native-pct"),
            ("two-clients", "native-random"),
        ]
    );
    let one: Vec<&str> = all
        .iter()
        .copied()
        .filter(|s| !GATE_REPLAY_ONLY.contains(s))
        .collect();
    assert_eq!(
        p[0].scenarios, one,
        "every scenario on one client but the replay-only ones"
    );
    assert_eq!(p[0].targets, [("nfs3", None), ("nfs4", None)]);
    assert_eq!(p[1].scenarios, one, "flufl-lock too, on both versions");
    assert!(!p.iter().any(|x| x.scenarios.contains(&"filelock")));
    assert_eq!(p[1].targets, [("nfs3x2", None), ("nfs4x2", None)]);
    // Only what the main run covered; no empty pass.
    let p = passes("uml", &["mailman-lockfile"]);
    assert_eq!(
        p.iter().map(|x| x.name).collect::<Vec<_>>(),
        ["one-client", "two-clients"]
    );
}

#[test]
fn the_qemu_fallback_runs_the_same_passes_with_fewer_runs() {
    let uml = passes("uml", SCENARIOS);
    let qemu = passes("qemu", SCENARIOS);
    assert_eq!(uml.len(), qemu.len());
    for (u, q) in uml.iter().zip(&qemu) {
        assert_eq!(
            (u.name, &u.scenarios, &u.targets),
            (q.name, &q.scenarios, &q.targets)
        );
        assert_eq!((q.replays, q.stress_runs), counts("qemu"));
        assert_eq!((u.replays, u.stress_runs), counts("uml"));
    }
    // On qemu the gated explorations are left out, the documented tokens' replays kept.
    let qemu_gate: Vec<&str> = gate_runs("qemu", SCENARIOS, &Ok(PathBuf::from("/venv")))
        .iter()
        .map(|r| r.engine())
        .collect();
    assert_eq!(qemu_gate, ["replay", "replay", "replay"]);
}

#[test]
fn the_part_started_before_the_main_suite_reruns_the_lock_scenarios_it_will_run() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    assert_eq!(scenarios_in(&dir), SCENARIOS);
    assert_eq!(scenarios_in(&dir.join("flufl-lock.race")), ["flufl-lock"]);
    assert!(scenarios_in(&dir.join("patchwork-series.race")).is_empty());
}

#[test]
fn the_gated_runs_are_on_two_nfs4_clients_only_where_they_can() {
    let venv = Ok(PathBuf::from("/venv"));
    let runs = gate_runs("uml", SCENARIOS, &venv);
    let what: Vec<(&str, &str, &str, &str)> = runs
        .iter()
        .map(|r| (r.scenario, r.variant, r.target, r.engine()))
        .collect();
    assert_eq!(
        what,
        [
            ("flufl-lock", "crash", "nfs4x2", "gate-random"),
            ("filelock", "v3.29.5", "nfs4x2", "gate-random"),
            ("filelock", "v3.29.4", "nfs4x2", "replay"),
            ("portalocker", "v3.2.0", "nfs4x2", "replay"),
            ("portalocker", "v4.0.0", "nfs3x2", "replay"),
        ]
    );
    // A replay is one execution of a token, in place of an exploration.
    assert!(runs[2..]
        .iter()
        .all(|r| r.token.is_some_and(|t| t.starts_with("rl1_"))));
    assert!(gate_runs("qemu", SCENARIOS, &venv)
        .iter()
        .all(|r| r.token.is_some()));
    assert!(gate_runs("uml", &["mailman-lockfile"], &venv).is_empty());
    assert!(gate_runs("uml", SCENARIOS, &Err("no venv".into())).is_empty());
    // When they cannot run, their rows are there anyway, skipped with the reason.
    let rows = rows_for_all(
        &[
            row("flufl-lock", "crash", "fs:tempdir"),
            row("filelock", "v3.29.4", "fs:tempdir"),
        ],
        Outcome::Skipped,
        "no guest",
    );
    let gate: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r.backend.starts_with("gate:"))
        .map(|r| (r.engine.as_str(), r.backend.as_str()))
        .collect();
    assert_eq!(
        gate,
        [("gate-random", "gate:nfs4x2"), ("replay", "gate:nfs4x2")]
    );
    // filelock is a gated replay only: no forced-replay rows of it on the NFS targets.
    assert!(!rows
        .iter()
        .any(|r| r.scenario == "filelock" && r.backend.starts_with("fs:")));
    assert!(rows.iter().all(|r| r.outcome == Outcome::Skipped && !r.met));
}

#[test]
fn shell_quote_keeps_one_word() {
    assert_eq!(shell_quote("a b"), "'a b'");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
}

#[test]
fn an_unavailable_rig_gives_skipped_rows_for_every_target_never_passes() {
    let rows = vec![
        row("mailman-lockfile", "mailman-2.1", "model"),
        row("mailman-lockfile", "mailman-2.1", "fs:tempdir"),
        row("mailman-lockfile", "mailman-2.1", "fs:tmpfs"),
        row("patchwork-person", "v", "fs:tempdir"),
    ];
    let t = real_variants(&rows);
    assert_eq!(
        t.len(),
        1,
        "one template per variant that ran on a real filesystem"
    );
    let s = rows_for_all(&t, Outcome::Skipped, "not root");
    assert_eq!(
        s.iter().map(|r| r.backend.as_str()).collect::<Vec<_>>(),
        ["fs:nfs3", "fs:nfs4", "fs:nfs3x2", "fs:nfs4x2"]
    );
    assert!(s.iter().all(|r| r.outcome == Outcome::Skipped
        && !r.met
        && r.reason.as_deref() == Some("not root")
        && r.replay.is_none()));
    assert_eq!(exit_code(&s), 0);
}

/// A gated run that leaves no result is an error row of its own (its scenario, variant and
/// target), whether or not the main summary exists yet: never a copy of another run's row.
#[test]
fn a_gated_run_without_a_result_is_its_own_error_row_even_before_the_main_summary() {
    let venv = Ok(PathBuf::new());
    let runs = gate_runs("uml", SCENARIOS, &venv);
    let replay = runs
        .iter()
        .find(|g| g.token.is_some())
        .expect("a documented token");
    let alone = gate_error_row(replay, &[], "no exit status");
    assert_eq!(
        (alone.scenario.as_str(), alone.variant.as_str()),
        (replay.scenario, replay.variant)
    );
    assert_eq!(alone.backend, format!("gate:{}", replay.target));
    assert_eq!(alone.engine, "replay");
    assert_eq!(alone.outcome, Outcome::Error);
    assert_eq!(
        alone.expected_invariants,
        vec![replay.invariant.to_string()]
    );
    assert_eq!(exit_code(std::slice::from_ref(&alone)), 3);
    // With a model row of the variant (the findings the guest forced), its faults come along.
    let mut model = row(replay.scenario, replay.variant, "model");
    model.faults = Some("crash1: crash locker1".into());
    let with = gate_error_row(replay, &[model], "no exit status");
    assert_eq!(with.faults.as_deref(), Some("crash1: crash locker1"));
}
