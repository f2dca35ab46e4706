//! Property tests for the isolationtester spec parser (`*.spec`): on noise, on mutated real
//! specs and on soups of spec tokens it never panics, and every refusal is a diagnostic with a
//! position inside the file that names it.

use proptest::prelude::*;
use racelab_core::lang::render_plain;
use racelab_real::pgspec::{parse_named, LoadError};

use crate::fuzz::{apply, mutation};

const FILE: &str = "fuzz.spec";

/// Real specs from PostgreSQL's suite: setup/teardown blocks, sessions, steps, quoted names,
/// listed permutations with blockers (`s1a(s2a)`, `*`, `notices N`).
pub(crate) const SPEC_SEEDS: &[&str] = &[
    include_str!("../../../../scenarios/pg-isolation/specs/nowait.spec"),
    include_str!("../../../../scenarios/pg-isolation/specs/deadlock-simple.spec"),
    include_str!("../../../../scenarios/pg-isolation/specs/deadlock-hard.spec"),
    include_str!("../../../../scenarios/pg-isolation/specs/merge-delete.spec"),
];

const SPEC_TOKENS: &[&str] = &[
    "setup",
    "teardown",
    "session",
    "step",
    "permutation",
    "{",
    "}",
    "(",
    ")",
    "*",
    ",",
    "\"s1\"",
    "\"",
    "s1",
    "s2a",
    "notices",
    "3",
    "{ BEGIN; }",
    "{ COMMIT; }",
    "#",
    "--",
    "\n",
    " ",
    "\t",
    "/*",
    "*/",
    "é",
    "\\",
    "99999999999999999999",
    "s1a(s2a)",
    "s1a(*)",
    "s1a(s2a notices 2)",
];

/// Parses `src`; a refusal must have diagnostics inside the text, and render naming the file.
/// A spec that parses must answer what the runner asks of it without panicking.
pub(crate) fn spec_checked(src: &str) -> Result<(), TestCaseError> {
    match parse_named(FILE, src) {
        Ok(spec) => {
            let count = spec.permutation_count();
            if !spec.permutations.is_empty() || count <= 1000 {
                for perm in spec.permutations_to_run() {
                    for p in &perm {
                        let _ = spec.step(p);
                    }
                }
            }
            let _ = spec.names_table("foo");
        }
        Err(LoadError::Syntax(e)) => {
            prop_assert!(!e.diags.is_empty(), "a refusal without diagnostics");
            for d in &e.diags {
                prop_assert!(
                    d.span.start <= d.span.end && d.span.end <= src.len(),
                    "span {:?} outside the file",
                    d.span
                );
                prop_assert!(
                    src.is_char_boundary(d.span.start) && src.is_char_boundary(d.span.end),
                    "span {:?} splits a character",
                    d.span
                );
                prop_assert!(!d.message.is_empty());
            }
            let text = render_plain(&e);
            prop_assert!(
                text.contains(FILE),
                "rendering does not name the file:\n{}",
                text
            );
        }
        Err(LoadError::Io(e)) => prop_assert!(false, "parsing text gave an I/O error: {}", e),
    }
    Ok(())
}

#[test]
fn spec_seeds_parse() {
    for s in SPEC_SEEDS {
        if let Err(e) = parse_named(FILE, s) {
            panic!("a seed does not parse: {e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::fuzz::cases(256), ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_the_spec_parser(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        spec_checked(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn mutated_specs_never_panic(
        seed in 0..SPEC_SEEDS.len(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let mut src = SPEC_SEEDS[seed].to_string();
        for m in &mutations {
            src = apply(&src, m);
        }
        spec_checked(&src)?;
    }

    #[test]
    fn spec_token_soups_never_panic(toks in proptest::collection::vec(prop::sample::select(SPEC_TOKENS), 0..50)) {
        spec_checked(&toks.join(" "))?;
    }
}
