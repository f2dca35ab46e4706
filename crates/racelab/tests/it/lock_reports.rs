//! Two reported lock races (issue #21), each on the model and in the unmodified library through
//! the gate: scenarios/portalocker.race (wolph/portalocker #115: TemporaryFileLock 3.2.0 gives
//! two holders, 4.0.0 holds) and scenarios/conda-lock.race (conda #3161: glob-then-create pid
//! locks give two holders, and a killed holder's lock makes every later run fail with LOCKERROR
//! after its whole back-off).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use racelab_core::explore::{explore, Budget, EngineConfig, EngineKind, Exploration};
use racelab_lang::ir::Program;
use racelab_real::gate::explore::{explore as gate_explore, GateBudget, GateExploration, Strategy};
use racelab_real::gate::run::{execute, Chooser, GateOptions, Last};

/// scenarios/`stem`.race.
pub(crate) fn scenario_file(stem: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../scenarios/{stem}.race"))
}

/// Variant `name` of scenarios/`stem`.race, compiled.
pub(crate) fn variant(stem: &str, name: &str) -> Program {
    let file = scenario_file(stem);
    let src = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {stem}.race: {e}"));
    let sc = racelab_core::lang::compile(&file.display().to_string(), &src)
        .unwrap_or_else(|e| panic!("{stem}.race compiles: {e:?}"));
    sc.variant(name).expect("the variant exists").clone()
}

/// native-dfs with two minutes, every state otherwise.
pub(crate) fn dfs_config() -> EngineConfig {
    EngineConfig::new(
        EngineKind::NativeDfs,
        Budget::new(u64::MAX, Duration::from_secs(120)),
    )
}

fn dfs(stem: &str, name: &str) -> Exploration {
    explore(&Arc::new(variant(stem, name)), &dfs_config()).expect("native-dfs runs")
}

/// gate-random (the suite's seed) over the real program, until every invariant of `want` has
/// broken or `executions` have run (two minutes at most).
fn explore_real(
    prog: &Program,
    opts: &GateOptions,
    want: &[&str],
    executions: u64,
    what: &str,
) -> GateExploration {
    let want: Vec<String> = want.iter().map(|w| w.to_string()).collect();
    let budget = GateBudget {
        executions,
        seconds: 120.0,
    };
    gate_explore(
        prog,
        opts,
        Strategy::Random,
        budget,
        &want,
        24301,
        &mut |_, _| {},
    )
    .unwrap_or_else(|e| panic!("the gate runs {what}: {e}"))
}

/// One pip at a time into the tests' shared venv.
static PIP: Mutex<()> = Mutex::new(());

/// `package==version` installed (once) where the drivers look for it,
/// `$PREFIX/PACKAGE/VERSION` of the tests' venv, as `cargo xtask venv` does; `deps` go into
/// the venv first and the release is then built against them (conda's old setup.py).
fn gated(
    stem: &str,
    name: &str,
    package: &str,
    version: &str,
    deps: &[&str],
) -> (Program, GateOptions, tempfile::TempDir) {
    let python = crate::lockfile::python();
    let bin = python.parent().expect("python's directory").to_path_buf();
    let dir = bin.parent().expect("the venv").join(package).join(version);
    let proof = dir.join(if package == "conda" {
        "conda/lock.py"
    } else {
        "portalocker/utils.py"
    });
    {
        let _one = PIP.lock().unwrap_or_else(|e| e.into_inner());
        let pip = |args: &[&str]| {
            let out = std::process::Command::new(bin.join("pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(args)
                .output()
                .expect("run pip");
            assert!(
                out.status.success(),
                "pip install {args:?} (needs PyPI): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        if !proof.exists() {
            if !deps.is_empty() {
                pip(deps);
            }
            let target = dir.display().to_string();
            let spec = format!("{package}=={version}");
            let mut args = vec!["--no-deps", "--target", &target, &spec];
            if !deps.is_empty() {
                args.insert(0, "--no-build-isolation");
            }
            pip(&args);
        }
    }
    let prog = variant(stem, name);
    let base = tempfile::tempdir().expect("a temp dir");
    let mut opts = GateOptions::new(&scenario_file(stem), base.path()).expect("gate options");
    opts.racelab = PathBuf::from(env!("CARGO_BIN_EXE_racelab"));
    opts.path_prefix = Some(bin);
    (prog, opts, base)
}

const CONDA_DEPS: &[&str] = &[
    "auxlib==0.0.43",
    "setuptools==65.5.0",
    "wheel==0.48.0",
    "requests==2.34.2",
];

fn found(ex: &Exploration) -> Vec<&str> {
    ex.findings.iter().map(|f| f.invariant.as_str()).collect()
}

#[test]
fn portalocker_3_2_0_gives_two_holders_and_4_0_0_is_proved_to_hold_on_the_model() {
    for v in ["v4.0.0", "v4.0.0-waiters"] {
        let ex = dfs("portalocker", v);
        assert!(
            ex.findings.is_empty() && ex.exhaustive,
            "{v}: {:?}",
            ex.findings
        );
    }
    // With a contender that gives up: its atexit release unlinks the holder's file (a stat,
    // then the unlink, by an actor that never held the lock), and the newcomer creates another.
    let ex = dfs("portalocker", "v3.2.0");
    let two = ex
        .findings
        .iter()
        .find(|f| f.invariant == "mutual_exclusion")
        .expect("two holders");
    let prog = Arc::new(variant("portalocker", "v3.2.0"));
    let shrunk = racelab_core::shrink::shrink(&prog, &two.schedule);
    let run = racelab_core::replay::replay(&prog, &shrunk).expect("the finding replays");
    let trace = run.trace;
    let unlinker = trace
        .steps
        .iter()
        .find(|s| s.operation.starts_with("unlink("))
        .and_then(|s| s.actor)
        .expect("an unlink");
    assert_eq!(trace.actors[unlinker], "locker2", "{trace:#?}");
    // Every actor waiting: the waiter's flock on the unlinked file, beside a newcomer's.
    let ex = dfs("portalocker", "v3.2.0-waiters");
    for want in ["mutual_exclusion", "no_lost_increment", "unhandled_error"] {
        assert!(found(&ex).contains(&want), "{want} not in {:?}", found(&ex));
    }
}

#[test]
fn the_real_portalocker_3_2_0_gives_two_holders_through_the_gate_and_4_0_0_does_not() {
    let (prog, opts, _base) = gated("portalocker", "v3.2.0", "portalocker", "3.2.0", &[]);
    let ex = explore_real(&prog, &opts, &["mutual_exclusion"], 60, "portalocker 3.2.0");
    let two = ex
        .findings
        .iter()
        .find(|f| f.invariant == "mutual_exclusion")
        .unwrap_or_else(|| panic!("no two holders in {} executions", ex.executions));
    let ops: Vec<&str> = two
        .execution
        .trace
        .iter()
        .map(|s| s.operation.as_str())
        .collect();
    assert!(ops.contains(&"unlink(app.lock)"), "{ops:?}");
    let (prog, opts, base) = gated("portalocker", "v4.0.0", "portalocker", "4.0.0", &[]);
    let ex = explore_real(&prog, &opts, &[], 15, "portalocker 4.0.0");
    assert!(
        ex.findings.is_empty(),
        "{:?}",
        ex.findings.first().map(|f| &f.message)
    );
    assert_eq!(ex.executions, 15);
    drop(base);
}

#[test]
fn conda_locks_give_two_holders_and_a_killed_holder_makes_the_next_run_fail_on_the_model() {
    for v in ["v4.1.6", "v4.2.7"] {
        let ex = dfs("conda-lock", v);
        assert!(
            found(&ex).contains(&"mutual_exclusion"),
            "{v}: {:?}",
            found(&ex)
        );
    }
    // The later run starts at +5 s; its last back-off sleep starts at +516 s (4.1.6: 1 + 2
    // + ... + 256 s before it, 512 s in it) or +107.3 s (4.2.7: 0.1 + ... + 51.2 s, then
    // 102.4 s), and the error comes when it ends.
    for (v, text, last_sleep_ms) in [
        ("v4.1.6-crash", "RuntimeError: LOCKERROR", 516_000),
        ("v4.2.7-crash", "LockError: LOCKERROR", 107_300),
    ] {
        let ex = dfs("conda-lock", v);
        let f = ex
            .findings
            .iter()
            .find(|f| f.invariant == "unhandled_error")
            .unwrap_or_else(|| panic!("{v}: {:?}", found(&ex)));
        assert!(f.message.contains(text), "{v}: {}", f.message);
        let prog = Arc::new(variant("conda-lock", v));
        let run = racelab_core::replay::replay(&prog, &f.schedule).expect("the finding replays");
        let last = run.trace.steps.last().expect("steps");
        assert!(last.operation.starts_with("sleep "), "{v}: {last:?}");
        assert_eq!(
            last.time_ms - racelab_core::model::machine::EPOCH_MS,
            last_sleep_ms,
            "{v}: the later run gives up after its whole back-off"
        );
    }
}

/// conda1 for `steps` gated calls, then the crash fault, then conda2 to its end.
struct CrashAfter {
    steps: usize,
    step: usize,
}

impl Chooser for CrashAfter {
    fn next_choice(&mut self, runnable: &[usize], _last: Option<Last>) -> Option<usize> {
        let want = match self.step.cmp(&self.steps) {
            std::cmp::Ordering::Less => 0,
            std::cmp::Ordering::Equal => 2,
            std::cmp::Ordering::Greater => 1,
        };
        self.step += 1;
        runnable.contains(&want).then_some(want)
    }
}

#[test]
fn the_real_conda_lock_fails_every_later_run_after_a_killed_holder_through_the_gate() {
    // conda 4.2.7: stat, stat, the glob's open of the directory, the pid file's open and
    // utime; killed there, its pid file stays, and conda2 five seconds later globs it 11 times
    // and raises LockError once the back-off (204.7 s of virtual time) runs out. The exit
    // comes right after a sleep, no gated call: the gate reports it all the same.
    let (prog, opts, base) = gated("conda-lock", "v4.2.7-crash", "conda", "4.2.7", CONDA_DEPS);
    let exec =
        execute(&prog, &opts, &mut CrashAfter { steps: 5, step: 0 }).expect("a gated execution");
    let ops: Vec<&str> = exec.trace.iter().map(|s| s.operation.as_str()).collect();
    assert!(ops[3].starts_with("open(pkgs.pid"), "{ops:?}");
    let err = exec
        .broken
        .iter()
        .find(|b| b.invariant == "unhandled_error")
        .unwrap_or_else(|| panic!("no LOCKERROR: {:#?}", exec.trace));
    assert!(err.message.contains("LOCKERROR"), "{}", err.message);
    let globs = exec
        .trace
        .iter()
        .filter(|s| s.actor == Some(1) && s.operation == "open(pkgs)")
        .count();
    assert_eq!(globs, 11, "{:#?}", exec.trace);
    drop(base);
    // 4.1.6 through the gate: two processes both see no lock and both go in.
    let (prog, opts, _base) = gated("conda-lock", "v4.1.6", "conda", "4.1.6", CONDA_DEPS);
    let ex = explore_real(&prog, &opts, &["mutual_exclusion"], 60, "conda 4.1.6");
    assert!(
        ex.findings
            .iter()
            .any(|f| f.invariant == "mutual_exclusion"),
        "no two holders in {} executions",
        ex.executions
    );
}
