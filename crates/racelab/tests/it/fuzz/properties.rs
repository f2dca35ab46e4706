//! The compiler's fuzz properties: the seeds compile, random bytes and mutated seeds never
//! panic, deep nesting is refused, and forged replay tokens are refused.

use proptest::prelude::*;
use racelab_core::lang::render_plain;

use super::{
    apply, cases, compile, compile_checked, compile_checked_with, libraries, mutation,
    nested_scenario, FILE, FLUFL_LIB, MAILMAN, MAILMAN_LIB, NESTERS, SEEDS, SMALL_IMPORT, TOKENS,
};

#[test]
fn seeds_compile() {
    for s in SEEDS {
        if let Err(e) = compile(FILE, s) {
            panic!("a seed does not compile:\n{}", render_plain(&e));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(512), ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let src = String::from_utf8_lossy(&bytes);
        compile_checked(&src)?;
    }

    #[test]
    fn random_text_from_language_alphabet_never_panics(
        chars in proptest::collection::vec(prop::sample::select(&b"scenario actor{}()\"=>,.x3s_\n #-+*/%<!ENOENTokerr"[..]), 0..300)
    ) {
        let src: String = chars.into_iter().map(char::from).collect();
        compile_checked(&src)?;
    }

    #[test]
    fn mutated_scenarios_never_panic(
        seed in 0..SEEDS.len(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let mut src = SEEDS[seed].to_string();
        for m in &mutations {
            src = apply(&src, m);
        }
        compile_checked(&src)?;
    }

    #[test]
    fn mutated_libraries_never_panic(
        which in 0..2usize,
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let (mut mailman, mut flufl) = (MAILMAN_LIB.to_string(), FLUFL_LIB.to_string());
        let lib = if which == 0 { &mut mailman } else { &mut flufl };
        for m in &mutations {
            *lib = apply(lib, m);
        }
        let main = if which == 0 { MAILMAN } else { SMALL_IMPORT };
        compile_checked_with(main, &libraries(&mailman, &flufl))?;
    }

    #[test]
    fn token_soups_inside_an_actor_never_panic(toks in proptest::collection::vec(0..TOKENS.len(), 0..40)) {
        let body: Vec<&str> = toks.iter().map(|&t| TOKENS[t]).collect();
        let src = format!("scenario s {{\n  log l\n  cell c = 0\n  actor a {{\n    {}\n  }}\n}}\n", body.join(" "));
        compile_checked(&src)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), ..ProptestConfig::default() })]

    /// Deeply nested programs (blocks, `else if`, bare `match` arms, parentheses, operators,
    /// calls, interpolations), from shallow to far past the limit: compile never panics and
    /// never overflows the stack of a test thread (2 MiB); nesting past the limit is exactly
    /// one diagnostic that names it.
    #[test]
    fn deep_nesting_never_overflows(levels in proptest::collection::vec(0..NESTERS.len(), 0..400)) {
        let mut levels = levels;
        let mut seen_interpolation = false;
        levels.retain(|&i| {
            let interp = NESTERS[i].0 == "\"{";
            let keep = !(interp && seen_interpolation);
            seen_interpolation |= interp;
            keep
        });
        let src = nested_scenario(&levels);
        compile_checked(&src)?;
        if let Err(e) = compile(FILE, &src) {
            if e.diags.iter().any(|d| d.message.starts_with("nested too deeply")) {
                prop_assert_eq!(e.diags.len(), 1, "{}", render_plain(&e));
            }
        }
    }
}

/// A replay token around arbitrary bytes, with a correct checksum, so that decoding gets past
/// the checksum into the fields.
fn forged_token(data: &[u8]) -> String {
    use base64::Engine as _;
    let mut b = data.to_vec();
    let mut h = 0x811c_9dc5u32;
    for x in data {
        h ^= u32::from(*x);
        h = h.wrapping_mul(0x0100_0193);
    }
    b.extend_from_slice(&h.to_le_bytes());
    format!(
        "rl1_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(512), ..ProptestConfig::default() })]

    /// Forged tokens (version byte 1 or 2, then anything, including lengths near 2^64 and
    /// long runs) decode to a schedule or to a `TokenError`, never a panic.
    #[test]
    fn forged_replay_tokens_never_panic(
        version in 1u8..=2,
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut data = vec![version];
        data.extend(body);
        let _ = racelab_core::schedule::Schedule::decode(&forged_token(&data));
    }
}

#[test]
fn a_forged_token_with_a_huge_length_is_refused() {
    // Version, fingerprint, then a name length of 2^64 - 1.
    let mut data = vec![1u8, 0, 0, 0, 0];
    data.extend([0xff; 9]);
    data.push(0x01);
    let err = racelab_core::schedule::Schedule::decode(&forged_token(&data)).unwrap_err();
    assert!(err.to_string().contains("cut short"), "{err}");
}
