//! Shrinking on every built-in failing variant: the shrunk schedule has no more context
//! switches (nor steps, nor faults) than the one an engine found, breaks the same invariant, and
//! replays 100 times out of 100.

use std::sync::Arc;
use std::time::Duration;

use racelab_core::explore::{explore, Budget, EngineConfig, EngineKind};
use racelab_lang::ir::Expected;

use super::load;

#[test]
fn every_failing_variant_shrinks_and_the_shrunk_schedule_replays_100_of_100() {
    let mut table = Vec::new();
    let mut fewer = 0;
    for f in scenarios::all() {
        let stem = f.file_stem().expect("stem").to_string_lossy().into_owned();
        for prog in load(&stem)
            .variants
            .into_iter()
            .filter(|p| matches!(p.expected, Some(Expected::Violates(_) | Expected::Deadlock)))
        {
            let prog = Arc::new(prog);
            // Random schedules are the long, switch-heavy ones a person would not want to read.
            let cfg = EngineConfig::new(
                EngineKind::NativeRandom,
                Budget::new(5_000, Duration::from_secs(20)),
            );
            let ex = explore(&prog, &cfg).expect("native-random runs any scenario");
            assert!(
                !ex.findings.is_empty(),
                "{stem}/{}: nothing found to shrink",
                prog.variant
            );
            for found in &ex.findings {
                let original = &found.schedule;
                let shrunk = racelab_core::replay::shrink(&prog, original);
                let what = format!("{stem}/{} {}", prog.variant, found.invariant);
                assert!(
                    shrunk.switches() <= original.switches(),
                    "{what}: {} switches became {}",
                    original.switches(),
                    shrunk.switches()
                );
                assert!(
                    shrunk.steps.len() <= original.steps.len(),
                    "{what}: {} steps became {}",
                    original.steps.len(),
                    shrunk.steps.len()
                );
                assert_eq!(shrunk.target, original.target);
                for _ in 0..100 {
                    let r = racelab_core::replay::replay(&prog, &shrunk)
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert!(
                        r.reproduced(&shrunk),
                        "{what}: the shrunk schedule did not break it"
                    );
                }
                fewer += usize::from(shrunk.switches() < original.switches());
                table.push(format!(
                    "{what}: {} -> {} switches, {} -> {} steps",
                    original.switches(),
                    shrunk.switches(),
                    original.steps.len(),
                    shrunk.steps.len()
                ));
            }
        }
    }
    eprintln!("{}", table.join("\n"));
    // Not vacuous: random schedules are rarely minimal.
    assert!(
        fewer * 2 > table.len(),
        "shrinking removed switches in only {fewer} of {} findings:\n{}",
        table.len(),
        table.join("\n")
    );
}
