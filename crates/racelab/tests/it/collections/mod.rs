//! Lists, maps and operation fallbacks in the scenario language: how they lower, what malformed
//! uses report (expect-test snapshots), and what the model finds with them (native-dfs).

use racelab_core::explore::{explore, Budget, EngineConfig, EngineKind};
use racelab_core::lang::{compile, render_plain};

mod lowering;
mod semantics;

/// Every finding of native-dfs in the scenario's first variant: (invariant, message), sorted.
fn findings(src: &str) -> Vec<(String, String)> {
    let sc = compile("test.race", src).unwrap_or_else(|e| panic!("{}", render_plain(&e)));
    let prog = std::sync::Arc::new(sc.variants[0].clone());
    let ex = explore(
        &prog,
        &EngineConfig::new(
            EngineKind::NativeDfs,
            Budget::new(10_000, std::time::Duration::from_secs(60)),
        ),
    )
    .expect("explores");
    let mut found: Vec<(String, String)> = ex
        .findings
        .iter()
        .map(|f| (f.invariant.clone(), f.message.clone()))
        .collect();
    found.sort();
    found
}
