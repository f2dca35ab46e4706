//! scenarios/npm-lockfile.race and proper-lockfile.race: npm's `lockfile` and its stale-lock
//! race (npm/lockfile #4) and proper-lockfile's (#121), on the model (lockfile 0.4.2, 1.0.4's
//! lockSync and proper-lockfile 4.1.2 break, lockfile 0.4.3 proved to hold) and in the real
//! releases under Node through the gate (libuv's thread pool included), where the same verdicts
//! come out and the finding's token replays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use racelab::explore::{explore, Budget, EngineConfig, EngineKind};
use racelab::gate::explore::{explore as gate_explore, replay, GateBudget, Strategy};
use racelab::gate::run::GateOptions;
use racelab::ir::Program;
use racelab::schedule::Schedule;

fn scenario_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/npm-lockfile.race")
}

fn variant(name: &str) -> Program {
    let file = scenario_file();
    let src = std::fs::read_to_string(&file).expect("read npm-lockfile.race");
    let sc = racelab::lang::compile(&file.display().to_string(), &src)
        .unwrap_or_else(|e| panic!("npm-lockfile.race compiles: {e:?}"));
    sc.variant(name).expect("the variant exists").clone()
}

#[test]
fn the_model_breaks_0_4_2_and_lock_sync_and_proves_0_4_3() {
    let dfs = EngineConfig::new(
        EngineKind::NativeDfs,
        Budget::new(u64::MAX, Duration::from_secs(120)),
    );
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

/// A directory standing for `$RACELAB_VENV` with lockfile `version` installed (once) as
/// `cargo xtask venv` installs it, for the driver to load.
fn venv_with(version: &str) -> PathBuf {
    venv_with_package("lockfile", version)
}

/// The same for npm package `name`.
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
    let prog = variant(v);
    let base = tempfile::tempdir().expect("a temp dir");
    let mut opts = GateOptions::new(&scenario_file(), base.path()).expect("gate options");
    opts.racelab = PathBuf::from(env!("CARGO_BIN_EXE_racelab"));
    opts.extra_env = vec![(
        "RACELAB_VENV".into(),
        venv_with(version).display().to_string(),
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
        let found = ex
            .findings
            .iter()
            .find(|f| f.invariant == "exclusive")
            .unwrap_or_else(|| panic!("{v}: no two holders in {} executions", ex.executions));
        // Both waiters judged the dead holder's lock stale (its ctime is the run's start, and
        // Date.now() is 11 s later on the virtual clock), and the second unlinked the first's.
        let ops: Vec<&str> = found
            .execution
            .trace
            .iter()
            .map(|s| s.operation.as_str())
            .collect();
        assert!(
            ops.iter().filter(|o| **o == "unlink(app.lock)").count() >= 2,
            "{v}: {ops:?}"
        );
        let sched = Schedule::decode(&found.shrunk.encode()).expect("the token decodes");
        let again = replay(&prog, &opts, &sched).expect("the token replays");
        assert!(again.broke("exclusive"), "{v}: {:#?}", again.trace);
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

fn proper_variant() -> (Program, PathBuf) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/proper-lockfile.race");
    let src = std::fs::read_to_string(&file).expect("read proper-lockfile.race");
    let sc = racelab::lang::compile(&file.display().to_string(), &src)
        .unwrap_or_else(|e| panic!("proper-lockfile.race compiles: {e:?}"));
    (sc.variant("v4.1.2").expect("v4.1.2").clone(), file)
}

#[test]
fn proper_lockfile_4_1_2_removes_a_peers_fresh_lock_on_the_model_and_for_real() {
    let (prog, file) = proper_variant();
    let dfs = EngineConfig::new(
        EngineKind::NativeDfs,
        Budget::new(u64::MAX, Duration::from_secs(120)),
    );
    let ex = explore(&Arc::new(prog.clone()), &dfs).expect("native-dfs runs");
    assert!(
        ex.findings.iter().any(|f| f.invariant == "exclusive"),
        "{:?}",
        ex.findings
    );
    // The real 4.1.2 under Node, through the gate.
    let venv = venv_with_package("proper-lockfile", "4.1.2");
    let base = tempfile::tempdir().expect("a temp dir");
    let mut opts = GateOptions::new(&file, base.path()).expect("gate options");
    opts.racelab = PathBuf::from(env!("CARGO_BIN_EXE_racelab"));
    opts.extra_env = vec![("RACELAB_VENV".into(), venv.display().to_string())];
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
    let found = ex
        .findings
        .iter()
        .find(|f| f.invariant == "exclusive")
        .unwrap_or_else(|| panic!("no two holders in {} executions", ex.executions));
    let ops: Vec<&str> = found
        .execution
        .trace
        .iter()
        .map(|s| s.operation.as_str())
        .collect();
    assert!(
        ops.iter()
            .filter(|o| **o == "rmdir(data.json.lock)")
            .count()
            >= 2,
        "{ops:?}"
    );
    let sched = Schedule::decode(&found.shrunk.encode()).expect("the token decodes");
    let again = replay(&prog, &opts, &sched).expect("the token replays");
    assert!(again.broke("exclusive"), "{:#?}", again.trace);
}
