//! Replay: tokens round-trip, reproduce the same outcome every time, and refuse what does not fit.

use std::sync::Arc;
use std::time::Duration;

use racelab_core::explore::{explore, Budget, EngineConfig, EngineKind};
use racelab_core::replay::replay;
use racelab_core::schedule::{Schedule, TokenError};

use super::engines::{program, LOST_UPDATE};

const MAILMAN: &str = include_str!("../../../../scenarios/mailman-lockfile.race");

fn mailman(variant: &str) -> Arc<racelab_lang::ir::Program> {
    let sc = racelab_core::lang::compile(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scenarios/mailman-lockfile.race"
        ),
        MAILMAN,
    )
    .expect("the built-in scenario compiles");
    Arc::new(sc.variant(variant).expect("variant exists").clone())
}

#[test]
fn every_recorded_mailman_token_replays_to_the_same_outcome_100_times() {
    let prog = mailman("mailman-2.1");
    let mut tokens = Vec::new();
    for kind in [EngineKind::ShuttleRandom, EngineKind::Loom] {
        let ex = explore(
            &prog,
            &EngineConfig::new(kind, Budget::new(20_000, Duration::from_secs(60))),
        )
        .expect("runs");
        tokens.extend(ex.findings.iter().map(|f| f.schedule.encode()));
    }
    assert!(
        tokens.len() >= 3,
        "expected findings for several invariants, got {}",
        tokens.len()
    );
    for token in &tokens {
        let sched = Schedule::decode(token).expect("our own token decodes");
        let first = replay(&prog, &sched).expect("fits");
        assert!(
            first.reproduced(&sched),
            "token does not reproduce {:?}",
            sched.target
        );
        for _ in 0..99 {
            let again = replay(&prog, &sched).expect("fits");
            assert_eq!(again.broken, first.broken);
            assert_eq!(again.trace, first.trace);
        }
    }
}

#[test]
fn tokens_round_trip() {
    let s = Schedule {
        scenario: "s".into(),
        variant: "v-2.1".into(),
        fingerprint: 0xdead_beef,
        target: Some("inv".into()),
        steps: vec![0, 0, 1, 2, 2, 2, 0],
        params: vec![],
    };
    assert_eq!(Schedule::decode(&s.encode()), Ok(s.clone()));
    let untargeted = Schedule {
        target: None,
        steps: vec![],
        ..s
    };
    assert_eq!(Schedule::decode(&untargeted.encode()), Ok(untargeted));
}

#[test]
fn a_token_from_another_variant_or_scenario_is_refused_by_name() {
    let ex = explore(
        &mailman("mailman-2.1"),
        &EngineConfig::new(
            EngineKind::ShuttleRandom,
            Budget::new(5_000, Duration::from_secs(30)),
        ),
    )
    .expect("runs");
    let sched = &ex.findings[0].schedule;
    match replay(&mailman("patched"), sched) {
        Err(TokenError::WrongScenario {
            token_variant,
            variant,
            ..
        }) => {
            assert_eq!(token_variant, "mailman-2.1");
            assert_eq!(variant, "patched");
        }
        other => panic!("expected WrongScenario, got {other:?}"),
    }
    match replay(&program(LOST_UPDATE), sched) {
        Err(e @ TokenError::WrongScenario { .. }) => {
            assert!(e.to_string().contains("mailman-lockfile"), "{e}")
        }
        other => panic!("expected WrongScenario, got {other:?}"),
    }
}

#[test]
fn a_corrupted_token_is_refused() {
    let prog = program(LOST_UPDATE);
    let ex = explore(
        &prog,
        &EngineConfig::new(
            EngineKind::ShuttleDfs,
            Budget::new(1_000, Duration::from_secs(30)),
        ),
    )
    .expect("runs");
    let token = ex.findings[0].schedule.encode();
    // Change one character in the middle.
    let mut chars: Vec<char> = token.chars().collect();
    let mid = chars.len() / 2;
    chars[mid] = if chars[mid] == 'A' { 'B' } else { 'A' };
    let bad: String = chars.into_iter().collect();
    assert!(matches!(
        Schedule::decode(&bad),
        Err(TokenError::Corrupted | TokenError::Malformed(_))
    ));
    assert!(matches!(
        Schedule::decode("hello"),
        Err(TokenError::Malformed(_))
    ));
    assert!(matches!(
        Schedule::decode(&token[..token.len() - 3]),
        Err(TokenError::Corrupted | TokenError::Malformed(_))
    ));
}

#[test]
fn a_token_for_an_edited_scenario_is_stale_but_comments_do_not_matter() {
    let prog = program(LOST_UPDATE);
    let ex = explore(
        &prog,
        &EngineConfig::new(
            EngineKind::ShuttleDfs,
            Budget::new(1_000, Duration::from_secs(30)),
        ),
    )
    .expect("runs");
    let sched = ex.findings[0].schedule.clone();
    let commented =
        program(&LOST_UPDATE.replace("cell counter = 0", "cell counter = 0   # a comment\n"));
    assert!(
        replay(&commented, &sched).is_ok(),
        "comments and layout must not invalidate tokens"
    );
    let edited = program(
        &LOST_UPDATE
            .replace("seen + 1", "seen + 2")
            .replace("counter == 2", "counter == 4"),
    );
    assert!(matches!(
        replay(&edited, &sched),
        Err(TokenError::Stale { .. })
    ));
}

#[test]
fn shrinking_never_adds_switches_and_keeps_the_failure() {
    let prog = mailman("mailman-2.1");
    let ex = explore(
        &prog,
        &EngineConfig::new(
            EngineKind::ShuttleRandom,
            Budget::new(20_000, Duration::from_secs(60)),
        ),
    )
    .expect("runs");
    for f in &ex.findings {
        let shrunk = racelab_core::replay::shrink(&prog, &f.schedule);
        assert!(shrunk.switches() <= f.schedule.switches());
        assert!(
            replay(&prog, &shrunk).expect("fits").reproduced(&shrunk),
            "shrunk schedule lost {:?}",
            f.invariant
        );
    }
}
