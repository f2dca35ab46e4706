//! The public API a project's own tests call (`racelab::check`, `Scenario`, `Engine`):
//! the same verdicts, tokens and diagnostics as the CLI, from `cargo test`.

use racelab::{Engine, Scenario};

/// `racelab new`'s starting scenario: `racy` breaks `exclusive`, `fixed` holds.
fn starter() -> Scenario {
    let text = racelab::starter::scenario("lockfile");
    Scenario::parse("races/lockfile.race", &text).expect("the starter compiles")
}

#[test]
fn a_racy_variant_gives_a_token_that_replays_and_its_fix_is_proved() {
    let scenario = starter();
    assert_eq!(scenario.variants(), ["racy", "fixed"]);

    let racy = scenario.explore("racy", Engine::dfs()).expect("explores");
    racy.assert_met();
    assert_eq!(racy.outcome(), reports::Outcome::Violation, "{racy}");
    let (invariant, token) = racy.findings()[0];
    assert_eq!(invariant, "exclusive");
    let table = racy.table().expect("a finding has its step table");
    assert!(table.contains("alice") && table.contains("bob"), "{table}");
    assert!(
        racy.to_string().contains(token),
        "the message shows the token"
    );

    let replay = scenario.replay("racy", token).expect("the token fits");
    assert!(replay.reproduced, "{}", replay.table);
    assert_eq!(replay.broken, ["exclusive"]);

    let fixed = scenario.explore("fixed", Engine::dfs()).expect("explores");
    assert!(fixed.proved() && fixed.met(), "{fixed}");
    // PCT on the fixed variant: a sample that holds, not a proof.
    let sampled = scenario
        .explore("fixed", Engine::pct().schedules(200))
        .expect("explores");
    assert!(sampled.met() && !sampled.proved(), "{sampled}");
}

#[test]
fn check_judges_every_variant_and_a_wrong_expectation_fails_with_the_table() {
    let scenario = starter();
    let verdicts = scenario.check();
    assert_eq!(verdicts.len(), 2);
    assert!(verdicts.iter().all(|v| v.met()), "{verdicts:?}");

    // The racy variant claimed to hold: check reports it unmet, with the interleaving.
    let wrong = racelab::starter::scenario("lockfile").replacen(
        "expect violates exclusive",
        "expect holds",
        1,
    );
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("lockfile.race");
    std::fs::write(&file, wrong).expect("write the scenario");
    let failure = std::panic::catch_unwind(|| racelab::check(&file))
        .expect_err("an unmet expectation fails the test");
    let message = failure
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    assert!(
        message.contains("1 of 2 variants of lockfile miss their expectation")
            && message.contains(&format!(
                "racelab replay {} --variant racy rl1_",
                file.display()
            )),
        "{message}"
    );
}

#[test]
fn bad_input_is_an_error_that_says_what_and_where() {
    let err = Scenario::parse("bad.race", "scenario s {\n  actor a { frobnicate() }\n}\n")
        .err()
        .expect("an unknown operation does not compile");
    let text = err.to_string();
    assert!(text.contains("bad.race:2:"), "{text}");
    let err = starter()
        .explore("nope", Engine::dfs())
        .expect_err("no such variant");
    assert_eq!(
        err.to_string(),
        "no variant `nope`; the variants are racy, fixed"
    );
    let scenario = starter();
    let racy = scenario.explore("racy", Engine::dfs()).expect("explores");
    let err = scenario
        .replay("fixed", racy.findings()[0].1)
        .expect_err("racy's token is not fixed's");
    assert!(err.to_string().contains("variant `racy`"), "{err}");
    assert!(Scenario::load("/nonexistent/x.race").is_err());
}
