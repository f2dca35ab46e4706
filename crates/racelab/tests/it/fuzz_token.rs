//! Property tests for replay tokens against a scenario: valid tokens made by random walks of
//! the model, the same tokens mutated (a character changed, lost, added, the token cut), and
//! forged tokens with a right checksum and fingerprint around random steps. Each decodes and
//! replays to a result or to a `TokenError` with a message (exit 2 at the command line), never
//! a panic.

use std::sync::Arc;

use proptest::prelude::*;
use racelab_core::model::Machine;
use racelab_core::replay::replay;
use racelab_core::schedule::Schedule;
use racelab_lang::ir::Program;

use crate::fuzz::{
    compile_seed, compile_seed_with, SEED_SMALL_CONSTRUCTS, SEED_SMALL_COUNTER, SEED_SMALL_FILES,
};

/// Every variant of the scenarios the tokens are replayed against: loops, files, faults,
/// `between` durations (decision steps) and a parameter. Compiled once for all cases.
pub(crate) fn token_programs() -> &'static [Arc<Program>] {
    static PROGRAMS: std::sync::OnceLock<Vec<Arc<Program>>> = std::sync::OnceLock::new();
    PROGRAMS.get_or_init(|| {
        [SEED_SMALL_COUNTER, SEED_SMALL_FILES, SEED_SMALL_CONSTRUCTS]
            .iter()
            .flat_map(|src| compile_seed(src).variants)
            .map(Arc::new)
            .collect()
    })
}

/// A valid token of `prog`: a random walk of at most `picks.len()` steps through its runnable
/// choices (actors, faults, duration digits).
fn walk(prog: &Arc<Program>, picks: &[usize]) -> String {
    let mut m = Machine::new(Arc::clone(prog));
    let mut steps = Vec::new();
    for &pick in picks {
        if m.is_finished() {
            break;
        }
        let runnable: Vec<usize> = (0..m.choice_count())
            .filter(|&c| m.is_runnable(c))
            .collect();
        let Some(&c) = runnable.get(pick % runnable.len().max(1)) else {
            break;
        };
        m.step(c);
        steps.push(c as u8);
    }
    let target = prog.invariants.first().map(|i| i.name.clone());
    Schedule::of(prog, target, steps).encode()
}

/// Decodes `token` and replays it on `prog`: an error must say something.
pub(crate) fn token_checked(prog: &Arc<Program>, token: &str) -> Result<(), TestCaseError> {
    match Schedule::decode(token).and_then(|s| replay(prog, &s).map(|_| ())) {
        Ok(()) => {}
        Err(e) => prop_assert!(
            !e.to_string().trim().is_empty(),
            "an empty token error: {:?}",
            e
        ),
    }
    Ok(())
}

/// What `racelab replay FILE --variant V TOKEN` does with a token: decode it, compile the
/// scenario with the token's parameter values, pick the variant, check the token fits and
/// replay it. Every refusal must say something (the command line prints it, exit 2).
pub(crate) fn replay_like_the_cli(
    src: &str,
    variant: &str,
    token: &str,
) -> Result<(), TestCaseError> {
    let sched = match Schedule::decode(token) {
        Ok(s) => s,
        Err(e) => {
            prop_assert!(!e.to_string().trim().is_empty());
            return Ok(());
        }
    };
    let scenario = match compile_seed_with(src, &sched.param_values()) {
        Ok(sc) => sc,
        Err(e) => {
            prop_assert!(
                !e.diags.is_empty(),
                "a refusal of the token's parameters says nothing"
            );
            return Ok(());
        }
    };
    if let Some(prog) = scenario.variant(variant) {
        token_checked(&Arc::new(prog.clone()), token)?;
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum TokenMutation {
    /// Replace the character at a position by one of the token alphabet (or a stray one).
    Replace(f64, char),
    Delete(f64),
    Insert(f64, char),
    Truncate(f64),
}

fn token_mutation() -> impl Strategy<Value = TokenMutation> {
    let ch = prop::sample::select(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ é"
            .chars()
            .collect::<Vec<_>>(),
    );
    prop_oneof![
        (0.0..1.0f64, ch.clone()).prop_map(|(a, c)| TokenMutation::Replace(a, c)),
        (0.0..1.0f64).prop_map(TokenMutation::Delete),
        (0.0..1.0f64, ch).prop_map(|(a, c)| TokenMutation::Insert(a, c)),
        (0.0..1.0f64).prop_map(TokenMutation::Truncate),
    ]
}

fn mutate(token: &str, m: &TokenMutation) -> String {
    let chars: Vec<char> = token.chars().collect();
    let at = |f: f64| ((chars.len() as f64 * f) as usize).min(chars.len());
    let mut out = chars.clone();
    match *m {
        TokenMutation::Replace(f, c) => {
            let i = at(f).min(chars.len().saturating_sub(1));
            if i < out.len() {
                out[i] = c;
            }
        }
        TokenMutation::Delete(f) => {
            let i = at(f);
            if i < out.len() {
                out.remove(i);
            }
        }
        TokenMutation::Insert(f, c) => out.insert(at(f), c),
        TokenMutation::Truncate(f) => out.truncate(at(f)),
    }
    out.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::fuzz::cases(128), ..ProptestConfig::default() })]

    #[test]
    fn valid_tokens_replay_on_their_variant_and_are_refused_by_the_others(
        which in any::<prop::sample::Index>(),
        picks in proptest::collection::vec(any::<usize>(), 0..120),
    ) {
        let progs = token_programs();
        let prog = &progs[which.index(progs.len())];
        let token = walk(prog, &picks);
        let sched = Schedule::decode(&token).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(replay(prog, &sched).is_ok(), "a walked token does not replay");
        for other in progs {
            token_checked(other, &token)?;
        }
    }

    #[test]
    fn mutated_valid_tokens_never_panic(
        which in any::<prop::sample::Index>(),
        picks in proptest::collection::vec(any::<usize>(), 0..120),
        mutations in proptest::collection::vec(token_mutation(), 1..4),
    ) {
        let progs = token_programs();
        let prog = &progs[which.index(progs.len())];
        let mut token = walk(prog, &picks);
        for m in &mutations {
            token = mutate(&token, m);
        }
        token_checked(prog, &token)?;
    }

    /// Tokens of the scenario with a parameter, carrying any parameter names and values
    /// (undeclared, out of range, extreme), replayed as the command line replays them.
    #[test]
    fn tokens_with_any_parameter_values_never_panic(
        names in proptest::collection::vec(prop::sample::select(&["ROUNDS", "rounds", "N", "", "ROUNDS "][..]), 0..3),
        values in proptest::collection::vec(prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(-1i64), Just(0i64), -5i64..5, any::<i64>()], 3),
        steps in proptest::collection::vec(0u8..4, 0..60),
    ) {
        let base = compile_seed(SEED_SMALL_CONSTRUCTS);
        for prog in &base.variants {
            let mut sched = Schedule::of(prog, None, steps.clone());
            sched.params = names.iter().zip(&values).map(|(n, v)| (n.to_string(), *v)).collect();
            replay_like_the_cli(SEED_SMALL_CONSTRUCTS, &prog.variant, &sched.encode())?;
        }
    }

    /// A token with the right scenario, variant, fingerprint and parameters around arbitrary
    /// steps (any actor, fault or digit number, in any order): it fits, so replay must walk it
    /// and stop at the first step that cannot be taken.
    #[test]
    fn fitting_tokens_with_random_steps_never_panic(
        which in any::<prop::sample::Index>(),
        steps in proptest::collection::vec(0u8..8, 0..200),
    ) {
        let progs = token_programs();
        let prog = &progs[which.index(progs.len())];
        let token = Schedule::of(prog, None, steps).encode();
        token_checked(prog, &token)?;
    }
}
