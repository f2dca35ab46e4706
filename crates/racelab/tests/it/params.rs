//! Scenario parameters: drawn, a failure shrunk to the smallest values that still fail, and
//! carried by the replay token.

use std::sync::Arc;
use std::time::Duration;

use racelab_core::explore::{Budget, EngineConfig, EngineKind};
use racelab_core::schedule::{Schedule, TokenError};

/// Two workers add one to a counter N times each (a read, then a write). The counter ends at
/// most at 2N, so `at_most_four` can break only from N = 3 on.
const SRC: &str = "scenario counter {
  param N in 1..=10
  cell c = 0
  actor worker x 2 {
    let i = 0
    while i < N {
      let v = c
      set c = v + 1
      i = i + 1
    }
  }
  invariant at_most_four: at end c <= 4
  expect holds
}
";

#[test]
fn a_failure_shrinks_to_the_smallest_parameter_and_its_token_replays() {
    let sc = racelab_core::lang::compile("counter.race", SRC).expect("compiles");
    let prog = sc.variant("default").expect("variant");
    assert_eq!(prog.params.len(), 1);
    assert_eq!(
        prog.params[0].value, 1,
        "a parameter compiles at its low end by default"
    );
    let cfg = EngineConfig::new(
        EngineKind::NativeDfs,
        Budget::new(u64::MAX, Duration::from_secs(60)),
    );
    let search =
        racelab_core::params::search("counter.race", SRC, "default", &prog.params, &cfg, 20, 7)
            .expect("search runs");
    let before = search
        .failing_before_shrink
        .clone()
        .expect("some draw of N in 1..=10 breaks at_most_four");
    assert!(before["N"] >= 3, "{before:?} cannot break it");
    assert_eq!(
        search.result.values["N"], 3,
        "shrunk from {before:?} to {:?}",
        search.result.values
    );
    let found = search
        .result
        .outcome
        .as_ref()
        .expect("explored")
        .findings
        .iter()
        .find(|f| f.invariant == "at_most_four")
        .expect("breaks at N = 3")
        .clone();
    assert_eq!(found.schedule.params, vec![("N".to_string(), 3)]);

    // The token carries N = 3: decoded, it compiles the scenario with it and reproduces.
    let token = Schedule::decode(&found.schedule.encode()).expect("decodes");
    assert_eq!(token.params, vec![("N".to_string(), 3)]);
    let with = racelab_core::lang::compile_with("counter.race", SRC, &token.param_values())
        .expect("compiles with N = 3");
    let prog3 = Arc::new(with.variant("default").expect("variant").clone());
    let r = racelab_core::replay::replay(&prog3, &token).expect("fits");
    assert!(r.reproduced(&token));

    // On the scenario compiled with other values the token is refused, saying why.
    let default = Arc::new(prog.clone());
    match racelab_core::replay::replay(&default, &token) {
        Err(e @ TokenError::Params { .. }) => assert!(e.to_string().contains("N = 3"), "{e}"),
        other => panic!(
            "expected a parameter mismatch, got {:?}",
            other.map(|r| r.trace.verdict)
        ),
    }
}

#[test]
fn bad_parameters_are_errors_with_a_caret() {
    let empty = SRC.replace("1..=10", "5..=2");
    let e = racelab_core::lang::compile("counter.race", &empty).expect_err("an empty range");
    assert!(racelab_core::lang::render_plain(&e).contains("the range 5..=2 is empty"));
    let mut values = std::collections::BTreeMap::new();
    values.insert("N".to_string(), 11);
    let e =
        racelab_core::lang::compile_with("counter.race", SRC, &values).expect_err("out of range");
    assert!(racelab_core::lang::render_plain(&e).contains("outside its range 1..=10"));
    values.clear();
    values.insert("M".to_string(), 1);
    let e = racelab_core::lang::compile_with("counter.race", SRC, &values)
        .expect_err("unknown parameter");
    assert!(racelab_core::lang::render_plain(&e).contains("does not declare"));
}
