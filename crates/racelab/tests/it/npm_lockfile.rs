//! scenarios/npm-lockfile.race and proper-lockfile.race: npm's `lockfile` and its stale-lock
//! race (npm/lockfile #4) and proper-lockfile's (#121), on the model (lockfile 0.4.2, 1.0.4's
//! lockSync and proper-lockfile 4.1.2 break, lockfile 0.4.3 proved to hold), proper-lockfile's
//! holder blocked past `stale` (#71, proper-lockfile-stall.race), and in the real releases under
//! Node through the gate (libuv's thread pool included), where the same verdicts come out and
//! the finding's token replays.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use racelab_core::explore::explore;
use racelab_core::schedule::Schedule;
use racelab_lang::ir::Program;
use racelab_real::gate::explore::{
    explore as gate_explore, replay, GateBudget, GateExploration, Strategy,
};
use racelab_real::gate::run::GateOptions;

use crate::lock_reports::{dfs_config as dfs, scenario_file, variant as compiled};

fn variant(name: &str) -> Program {
    compiled("npm-lockfile", name)
}

#[test]
fn the_model_breaks_0_4_2_and_lock_sync_and_proves_0_4_3() {
    let dfs = dfs();
    for (v, breaks) in [("v0.4.2", true), ("v0.4.3", false), ("v1.0.4-sync", true)] {
        let ex = explore(&Arc::new(variant(v)), &dfs).expect("native-dfs runs");
        let found = ex.findings.iter().any(|f| f.invariant == "exclusive");
        assert_eq!(found, breaks, "{v}: {:?}", ex.findings);
        if !breaks {
            assert!(
                ex.exhaustive,
                "{v}: native-dfs did not finish ({})",
                ex.bound
            );
        }
    }
}

/// A directory standing for `$RACELAB_VENV` with npm package `name`@`version` installed (once)
/// as `cargo xtask venv` installs it, for the driver to load.
fn venv_with_package(name: &str, version: &str) -> PathBuf {
    let python = crate::lockfile::python();
    let venv = python
        .parent()
        .and_then(Path::parent)
        .expect("the test's venv")
        .to_path_buf();
    let prefix = venv.join("npm").join(format!("{name}@{version}"));
    if !prefix
        .join("node_modules")
        .join(name)
        .join("package.json")
        .exists()
    {
        let out = std::process::Command::new("npm")
            .args([
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--prefix",
            ])
            .arg(&prefix)
            .arg(format!("{name}@{version}"))
            .output()
            .expect("run npm (Debian: apt-get install nodejs npm)");
        assert!(
            out.status.success(),
            "npm install {name}@{version} (needs the npm registry): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    venv
}

fn gated(v: &str, version: &str) -> (Program, GateOptions, tempfile::TempDir) {
    gated_package("npm-lockfile", v, "lockfile", version)
}

/// Variant `v` of scenarios/`stem`.race, and gate options in a fresh base directory with npm
/// package `name`@`version` installed where the driver looks for it.
fn gated_package(
    stem: &str,
    v: &str,
    name: &str,
    version: &str,
) -> (Program, GateOptions, tempfile::TempDir) {
    let prog = compiled(stem, v);
    let base = tempfile::tempdir().expect("a temp dir");
    let mut opts = GateOptions::new(&scenario_file(stem), base.path()).expect("gate options");
    opts.racelab = PathBuf::from(env!("CARGO_BIN_EXE_racelab"));
    opts.extra_env = vec![(
        "RACELAB_VENV".into(),
        venv_with_package(name, version).display().to_string(),
    )];
    (prog, opts, base)
}

fn budget(executions: u64) -> GateBudget {
    GateBudget {
        executions,
        seconds: 240.0,
    }
}

#[test]
fn the_real_0_4_2_and_lock_sync_give_two_holders_through_the_gate_and_replay() {
    for (v, version) in [("v0.4.2", "0.4.2"), ("v1.0.4-sync", "1.0.4")] {
        let (prog, opts, _base) = gated(v, version);
        let want = vec!["exclusive".to_string()];
        let ex = gate_explore(
            &prog,
            &opts,
            Strategy::Random,
            budget(150),
            &want,
            0x5eed,
            &mut |_, _| {},
        )
        .unwrap_or_else(|e| panic!("{v}: the gate runs the real lockfile: {e}"));
        // Both waiters judged the dead holder's lock stale (its ctime is the run's start, and
        // Date.now() is 11 s later on the virtual clock), and the second unlinked the first's.
        let ops = found_and_replayed(&ex, &prog, &opts, "exclusive", v);
        assert!(
            ops.iter().filter(|o| *o == "unlink(app.lock)").count() >= 2,
            "{v}: {ops:?}"
        );
    }
}

#[test]
fn the_real_0_4_3_holds_through_the_gate() {
    let (prog, opts, base) = gated("v0.4.3", "0.4.3");
    let ex = gate_explore(
        &prog,
        &opts,
        Strategy::Random,
        budget(25),
        &[],
        0x5eed,
        &mut |_, _| {},
    )
    .expect("the gate runs the real lockfile 0.4.3");
    assert_eq!(ex.executions, 25);
    assert!(
        ex.findings.is_empty(),
        "{:?}",
        ex.findings.iter().map(|f| &f.message).collect::<Vec<_>>()
    );
    assert!(
        std::fs::read_dir(base.path())
            .expect("read the base")
            .next()
            .is_none(),
        "a run directory was left"
    );
}

// ---- proper-lockfile (scenarios/proper-lockfile.race), moxystudio/node-proper-lockfile #121 ----

#[test]
fn proper_lockfile_4_1_2_removes_a_peers_fresh_lock_on_the_model_and_for_real() {
    let (prog, opts, _base) =
        gated_package("proper-lockfile", "v4.1.2", "proper-lockfile", "4.1.2");
    let ex = explore(&Arc::new(prog.clone()), &dfs()).expect("native-dfs runs");
    assert!(
        ex.findings.iter().any(|f| f.invariant == "exclusive"),
        "{:?}",
        ex.findings
    );
    // The real 4.1.2 under Node, through the gate.
    let want = vec!["exclusive".to_string()];
    let ex = gate_explore(
        &prog,
        &opts,
        Strategy::Pct { depth: 3 },
        budget(150),
        &want,
        0x5eed,
        &mut |_, _| {},
    )
    .expect("the gate runs the real proper-lockfile");
    let ops = found_and_replayed(&ex, &prog, &opts, "exclusive", "4.1.2");
    assert!(
        ops.iter().filter(|o| *o == "rmdir(data.json.lock)").count() >= 2,
        "{ops:?}"
    );
}

// ---- proper-lockfile-stall.race, node-proper-lockfile #71: a holder blocked past `stale` ----

#[test]
fn proper_lockfile_4_1_2_loses_a_blocked_holders_lock_and_says_so_late_on_the_model_and_for_real() {
    let (stale, opts, _base) = gated_package(
        "proper-lockfile-stall",
        "v4.1.2",
        "proper-lockfile",
        "4.1.2",
    );
    let ok = compiled("proper-lockfile-stall", "v4.1.2-stale-above-stall");
    // The model: two holders and a compromised lock when the stall outlasts `stale`, a proof
    // of neither when `stale` outlasts the stall.
    let ex = explore(&Arc::new(stale.clone()), &dfs()).expect("native-dfs runs");
    let mut broke: Vec<&str> = ex.findings.iter().map(|f| f.invariant.as_str()).collect();
    broke.sort();
    assert_eq!(broke, ["exclusive", "not_compromised"], "{:?}", ex.findings);
    let ex = explore(&Arc::new(ok.clone()), &dfs()).expect("native-dfs runs");
    assert!(ex.findings.is_empty() && ex.exhaustive, "{:?}", ex.findings);
    // The real 4.1.2, its event loop blocked in Atomics.wait: the waiter removes the holder's
    // lock and takes it, and the holder's overdue update (its own stat) then finds it gone or
    // someone else's.
    let want = vec!["exclusive".to_string(), "not_compromised".to_string()];
    let ex = gate_explore(
        &stale,
        &opts,
        Strategy::Random,
        budget(10),
        &want,
        0x5eed,
        &mut |_, _| {},
    )
    .expect("the gate runs the real proper-lockfile");
    let ops = found_and_replayed(&ex, &stale, &opts, "exclusive", "4.1.2 stalled");
    assert!(
        ops.contains(&"rmdir(data.json.lock)".to_string()),
        "{ops:?}"
    );
    let ops = found_and_replayed(&ex, &stale, &opts, "not_compromised", "4.1.2 stalled");
    assert!(
        ops.contains(&"write(log compromised)".to_string()),
        "{ops:?}"
    );
    // `stale` above the stall: the real holder keeps its lock.
    let ex = gate_explore(
        &ok,
        &opts,
        Strategy::Random,
        budget(5),
        &[],
        0x5eed,
        &mut |_, _| {},
    )
    .expect("the gate runs the real proper-lockfile");
    assert_eq!(ex.executions, 5);
    assert!(
        ex.findings.is_empty(),
        "{:?}",
        ex.findings.iter().map(|f| &f.message).collect::<Vec<_>>()
    );
}

/// The operations of `ex`'s first finding of `invariant` (which it must have), once its shrunk
/// token, encoded and decoded as a user would pass it, has broken `invariant` again in a replay.
fn found_and_replayed(
    ex: &GateExploration,
    prog: &Program,
    opts: &GateOptions,
    invariant: &str,
    what: &str,
) -> Vec<String> {
    let found = ex
        .findings
        .iter()
        .find(|f| f.invariant == invariant)
        .unwrap_or_else(|| panic!("{what}: no {invariant} in {} executions", ex.executions));
    let sched = Schedule::decode(&found.shrunk.encode()).expect("the token decodes");
    let again = replay(prog, opts, &sched).expect("the token replays");
    assert!(again.broke(invariant), "{what}: {:#?}", again.trace);
    found
        .execution
        .trace
        .iter()
        .map(|s| s.operation.clone())
        .collect()
}
