//! Kernel calls that are two steps: the model produces what real filesystems showed for
//! Mailman's patched lock ("unexpected linkcount: 1"), with no `expect on real` to cover it.

use std::sync::Arc;
use std::time::Duration;

use racelab_core::explore::{explore, Budget, EngineConfig, EngineKind};
use racelab_core::model::Machine;

/// The patched variant with `no_spurious_log` narrowed to the one message real stress runs
/// logged, so that the search looks for exactly that entry.
#[test]
fn the_patched_lock_logs_unexpected_linkcount_1_in_the_model() {
    let path = scenarios::dir().join("mailman-lockfile.race");
    let src = std::fs::read_to_string(&path).expect("built-in scenario");
    let narrowed = src.replace(
        "invariant no_spurious_log: always count(locks) == 0",
        "invariant no_spurious_log: always count(locks, \"unexpected linkcount: 1\") == 0",
    );
    assert_ne!(
        narrowed, src,
        "the scenario's no_spurious_log invariant changed: update this test"
    );
    let sc = racelab_core::lang::compile(&path.display().to_string(), &narrowed)
        .unwrap_or_else(|e| panic!("{}", racelab_core::lang::render_plain(&e)));
    let prog = Arc::new(sc.variant("patched").expect("variant").clone());
    let cfg = EngineConfig::new(
        EngineKind::NativeDfs,
        Budget::new(u64::MAX, Duration::from_secs(120)),
    );
    let ex = explore(&prog, &cfg).expect("runs");
    let found = ex
        .findings
        .iter()
        .find(|f| f.invariant == "no_spurious_log")
        .expect("the model reaches nlink 1 between a stat's lookup and its attributes");
    let mut m = Machine::new(Arc::clone(&prog));
    for &c in &found.schedule.steps {
        m.step(c as usize);
    }
    let log = m.log("locks").expect("the locks log");
    assert!(
        log.iter().any(|e| &**e == "unexpected linkcount: 1"),
        "{log:?}"
    );
}
