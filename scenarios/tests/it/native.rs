//! racelab's own engines on every built-in scenario: the stateful search meets every
//! expectation and proves what holds, and findings cross between engines both ways — a token
//! from native-dfs, -random or -pct replays with actors as shuttle tasks, and a token from
//! shuttle or loom replays on the machine stepped directly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use racelab_core::explore::{
    collect, explore, shuttle_engine, Budget, EngineConfig, EngineKind, Exploration, Found,
};
use racelab_core::model::Machine;
use racelab_lang::ir::{Expected, Program};
use racelab_real::suite;

use super::load;

/// Every variant of every built-in scenario, with its file's stem.
fn every_variant() -> Vec<(String, Arc<Program>)> {
    let mut out = Vec::new();
    for f in scenarios::all() {
        let stem = f.file_stem().expect("stem").to_string_lossy().into_owned();
        for v in &load(&stem).variants {
            out.push((stem.clone(), Arc::new(v.clone())));
        }
    }
    out
}

/// Whether breaking `invariant` is what the variant expects, as the suite judges it (a
/// deadlock, or the lock-order cycle a run that did not hang shows, when it expects one).
fn expected_invariant(prog: &Program, invariant: &str) -> bool {
    collect::tolerated(&prog.expected, invariant)
        || match &prog.expected {
            Some(Expected::Violates(wanted)) => wanted.iter().any(|w| w == invariant),
            Some(Expected::Deadlock) => invariant == racelab_lang::ir::oracle::DEADLOCK,
            _ => false,
        }
}

fn expects_a_failure(prog: &Program) -> bool {
    matches!(
        prog.expected,
        Some(Expected::Violates(_) | Expected::Deadlock)
    )
}

/// A budget a debug build gets through in seconds; variants beyond it are reported, not proven.
/// 100,000 states: every proof these tests check (racelab-linklock/no-fault: 55,918 states) and
/// the variants that break within it; the suite's native-dfs rows search every variant further.
/// (With 300,000 this test binary took 308 s of CI, most of it searching variants that prove nothing.)
fn dfs_config() -> EngineConfig {
    EngineConfig::new(
        EngineKind::NativeDfs,
        Budget::new(u64::MAX, Duration::from_secs(60)),
    )
    .max_states(100_000)
}

/// Results per variant, computed once for the tests that need them: they run at the same time,
/// and the second to ask waits for the first's result instead of searching the same states
/// again.
type PerVariant<T> = Mutex<HashMap<(String, String), Arc<OnceLock<T>>>>;

fn once_per_variant<T: Clone>(
    cache: &'static OnceLock<PerVariant<T>>,
    stem: &str,
    prog: &Arc<Program>,
    compute: impl FnOnce() -> T,
) -> T {
    let cell = cache
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry((stem.to_string(), prog.variant.to_string()))
        .or_default()
        .clone();
    cell.get_or_init(compute).clone()
}

/// Plain DFS of a variant within [`dfs_config`], once per variant.
fn plain_dfs(stem: &str, prog: &Arc<Program>) -> Exploration {
    static CACHE: OnceLock<PerVariant<Exploration>> = OnceLock::new();
    once_per_variant(&CACHE, stem, prog, || {
        explore(prog, &dfs_config()).expect("native-dfs runs any scenario")
    })
}

#[test]
fn native_dfs_meets_every_expectation_and_proves_what_holds() {
    let mut proven = Vec::new();
    let mut unproven = Vec::new();
    for (stem, prog) in every_variant() {
        let cfg = dfs_config();
        let ex = plain_dfs(&stem, &prog);
        let row = suite::result_row(&stem, &prog, &cfg, Ok(ex.clone()));
        if expects_a_failure(&prog) && !ex.exhaustive && !row.met {
            // Within this test's budget DFS alone may not reach every expected finding (explored
            // durations and faults multiply the states). The native engines together must (and
            // `native_findings_replay_on_shuttle_and_on_the_model` replays them); the suite's
            // native-dfs rows search further.
            let Some(Expected::Violates(wanted)) = &prog.expected else {
                panic!("{stem}/{}: {row:#?}", prog.variant)
            };
            // Whatever DFS did find is expected: an unexpected finding is never excused.
            assert!(
                ex.findings.iter().all(|f| wanted.contains(&f.invariant)),
                "{stem}/{}: {row:#?}",
                prog.variant
            );
            let found: Vec<String> = native_findings(&stem, &prog)
                .into_iter()
                .map(|(_, f)| f.invariant)
                .collect();
            let missing: Vec<&String> = wanted.iter().filter(|w| !found.contains(w)).collect();
            assert!(
                missing.is_empty(),
                "{stem}/{}: no native engine found {missing:?}",
                prog.variant
            );
            unproven.push(format!(
                "{stem}/{} (found by the native engines together)",
                prog.variant
            ));
            continue;
        }
        assert!(row.met, "{stem}/{}: {row:#?}", prog.variant);
        if expects_a_failure(&prog) {
            continue;
        }
        if ex.exhaustive {
            // A proof says how big the space was.
            assert!(
                ex.states.is_some_and(|n| n > 0),
                "{stem}/{}: exhaustive without a state count",
                prog.variant
            );
            assert!(row.states == ex.states && row.exhaustive);
            proven.push(format!("{stem}/{}", prog.variant));
        } else {
            // Not a proof, and the row says why.
            assert!(
                ex.bound.contains("budget"),
                "{stem}/{}: not exhaustive and no budget named: {}",
                prog.variant,
                ex.bound
            );
            unproven.push(format!("{stem}/{}", prog.variant));
        }
    }
    // The patched Mailman lock, once the benchmark proof here, now fails (stat is two steps:
    // issue 17), so the proof checked is the racelab lock's without faults.
    assert!(
        proven.contains(&"racelab-linklock/no-fault".to_string()),
        "proven: {proven:?}; not proven: {unproven:?}"
    );
    eprintln!("native-dfs proved {proven:?}; within this test's budget of 100000 states it did not finish {unproven:?}");
}

/// The findings of the three native engines on a variant expected to fail, once per variant
/// (native-dfs's are [`plain_dfs`]'s).
fn native_findings(stem: &str, prog: &Arc<Program>) -> Vec<(EngineKind, Found)> {
    static CACHE: OnceLock<PerVariant<Vec<(EngineKind, Found)>>> = OnceLock::new();
    once_per_variant(&CACHE, stem, prog, || {
        let mut out: Vec<(EngineKind, Found)> = plain_dfs(stem, prog)
            .findings
            .into_iter()
            .map(|f| (EngineKind::NativeDfs, f))
            .collect();
        for kind in [EngineKind::NativeRandom, EngineKind::NativePct] {
            // native-random needs 10,527 schedules for all three of mailman-lockfile/
            // patched-crash's invariants, and 6,220 for nfs-mailman-2.1's mutual_exclusion at
            // the default seed since the NFS model explores every answer a real client gives to
            // a read or a stat through a cached name (1,433 at seed 1, 2,561 at seed 2; with
            // the read's two answers only, 23,692, 8,965 and 26,199: seed luck either way,
            // crates/core/tests/native_golden.rs pins them); a search stops once it has found
            // every invariant.
            let cfg = EngineConfig::new(kind, Budget::new(20_000, Duration::from_secs(20)));
            let ex = explore(prog, &cfg).expect("native engines run any scenario");
            out.extend(ex.findings.into_iter().map(|f| (kind, f)));
        }
        out
    })
}

#[test]
fn native_findings_replay_on_shuttle_and_on_the_model() {
    let mut replayed = 0;
    for (stem, prog) in every_variant()
        .into_iter()
        .filter(|(_, p)| expects_a_failure(p))
    {
        let found = native_findings(&stem, &prog);
        assert!(
            !found.is_empty(),
            "{stem}/{}: no native engine found anything",
            prog.variant
        );
        for (kind, f) in found {
            let what = format!(
                "{stem}/{}: {} from {}",
                prog.variant,
                f.invariant,
                kind.name()
            );
            let m = shuttle_engine::replay(&prog, &f.schedule.steps)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(
                m.broken().iter().any(|b| b.invariant == f.invariant),
                "{what}: did not break on shuttle; broke {:?}",
                m.broken()
            );
            let r = racelab_core::replay::replay(&prog, &f.schedule)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(
                r.reproduced(&f.schedule),
                "{what}: did not reproduce on the model"
            );
            replayed += 1;
        }
    }
    assert!(replayed > 30, "only {replayed} findings were replayed");
}

/// Steps the machine directly along `steps`, as the native engines do, and returns it.
fn step_natively(prog: &Arc<Program>, steps: &[u8]) -> Machine {
    let mut m = Machine::new(Arc::clone(prog));
    for (i, &c) in steps.iter().enumerate() {
        assert!(
            m.is_runnable(usize::from(c)),
            "step {}: choice {c} is not runnable",
            i + 1
        );
        m.step(usize::from(c));
    }
    m
}

#[test]
fn shuttle_and_loom_findings_replay_on_the_native_stepper() {
    let mut replayed = 0;
    for (stem, prog) in every_variant()
        .into_iter()
        .filter(|(_, p)| expects_a_failure(p))
    {
        for kind in [
            EngineKind::ShuttleRandom,
            EngineKind::ShuttlePct,
            EngineKind::Loom,
        ] {
            let cfg = EngineConfig::new(kind, Budget::new(2_000, Duration::from_secs(5)));
            // loom refuses scenarios with more threads than it supports; nothing to replay then.
            let Ok(ex) = explore(&prog, &cfg) else {
                continue;
            };
            for f in ex.findings {
                let m = step_natively(&prog, &f.schedule.steps);
                assert!(
                    m.broken().iter().any(|b| b.invariant == f.invariant),
                    "{stem}/{}: {} from {} did not break when stepped natively; broke {:?}",
                    prog.variant,
                    f.invariant,
                    kind.name(),
                    m.broken()
                );
                replayed += 1;
            }
        }
    }
    assert!(replayed > 30, "only {replayed} findings were replayed");
}

/// Partial-order reduction (sleep sets) changes no verdict: every built-in variant meets its
/// expectation with it too, and proves the same variants.
#[test]
fn sleep_sets_change_no_verdict() {
    let mut unsettled = Vec::new();
    for (stem, prog) in every_variant() {
        let plain = plain_dfs(&stem, &prog);
        let por = explore(&prog, &dfs_config().por(true)).expect("runs");
        let proof = plain.exhaustive && plain.findings.is_empty();
        // A search that spends its budget without a finding has no verdict. Sleep sets change
        // the order of the search, and the budget includes 60 s of wall time on a shared
        // machine, so either search may end there (flufl-lock/nfs-crash spends all its states
        // either way; on a loaded CI machine plain DFS once ran out of time on
        // flufl-lock/nfs-lost-reply where sleep sets found the violation). Nothing to compare
        // then; but sleep sets must prove whatever plain DFS proves, and every verdict either
        // reaches must be the expected one.
        let settled = |e: &Exploration| e.exhaustive || !e.findings.is_empty();
        // Every finding either search makes is one the variant expects (a search the budget
        // stopped may have found only some of them).
        for (e, engine) in [(&plain, "plain"), (&por, "sleep sets")] {
            let wrong: Vec<&String> = e
                .findings
                .iter()
                .map(|f| &f.invariant)
                .filter(|i| !expected_invariant(&prog, i))
                .collect();
            assert!(
                wrong.is_empty(),
                "{stem}/{} with {engine}: unexpected {wrong:?}",
                prog.variant
            );
        }
        if !(proof || settled(&plain) && settled(&por)) {
            unsettled.push(format!("{stem}/{}", prog.variant));
            continue;
        }
        // Sleep sets prove whatever plain DFS proves, and find a violation where it finds one.
        assert_eq!(
            plain.findings.is_empty(),
            por.findings.is_empty(),
            "{stem}/{}: plain found {:?}, sleep sets {:?}",
            prog.variant,
            plain
                .findings
                .iter()
                .map(|f| &f.invariant)
                .collect::<Vec<_>>(),
            por.findings
                .iter()
                .map(|f| &f.invariant)
                .collect::<Vec<_>>()
        );
        if plain.exhaustive && por.exhaustive {
            let (a, b) = (
                suite::result_row(&stem, &prog, &dfs_config(), Ok(plain.clone())),
                suite::result_row(&stem, &prog, &dfs_config().por(true), Ok(por.clone())),
            );
            assert!(b.met, "{stem}/{} with sleep sets: {b:#?}", prog.variant);
            assert_eq!(
                (a.outcome, a.met),
                (b.outcome, b.met),
                "{stem}/{}",
                prog.variant
            );
        }
        if proof {
            assert!(
                por.exhaustive,
                "{stem}/{}: plain DFS proved it, sleep sets did not: {}",
                prog.variant, por.bound
            );
        }
        if plain.exhaustive && !expects_a_failure(&prog) {
            // Sleep sets skip transitions, never states; states that differ only in the order of
            // ghost bookkeeping (who entered a section first) may merge, so never more.
            assert!(
                por.states <= plain.states,
                "{stem}/{}: {:?} > {:?}",
                prog.variant,
                por.states,
                plain.states
            );
        }
    }
    eprintln!("sleep sets reached no verdict within the budget on: {unsettled:?}");
}
