//! `racelab fmt`: the printer on hand-written and generated inputs, the built-in scenarios
//! (fmt-clean, idempotent, same token fingerprint) and the command line.

use std::path::{Path, PathBuf};

use expect_test::expect;
use proptest::prelude::*;
use racelab_core::lang::fingerprint_tokens;
use racelab_core::lang::fmt::{format, FmtError};

use crate::fuzz::{apply, mutation, nested_scenario, NESTERS, SEEDS, TOKENS};
use crate::lang_cli::racelab;

fn fmt(src: &str) -> String {
    match format(src) {
        Ok(s) => s,
        Err(e) => panic!("does not format: {e:?}\n{src}"),
    }
}

#[test]
fn a_messy_scenario_is_reindented_and_respaced_with_its_comments_and_columns() {
    let messy = "\n\n# head comment\nscenario messy-one {\n      const X=1   # trailing\n  const LONG_NAME  = 2\ncell c=0\n\n\n\n      proc f( a ,b ) {\n  let v = a+b*-1\n      if v>0 and\n  v<10 {\n  set c = v\n      } else { set c = -v }\n    # own-line comment\n  match f(1,2) { ok => {}\n  err(ENOENT) =>{}\n}\n   return [ 1,2 ][0]\n  }\n  param P in 4 ..= 8\n  actor a x 2 { f(1, 2) }\n  variant base-line extends x.y-2 {expect holds}\n}   ";
    let formatted = fmt(messy);
    expect![[r#"
        # head comment
        scenario messy-one {
          const X = 1   # trailing
          const LONG_NAME  = 2
          cell c = 0

          proc f(a, b) {
            let v = a + b * -1
            if v > 0 and
              v < 10 {
              set c = v
            } else { set c = -v }
            # own-line comment
            match f(1, 2) { ok => {}
              err(ENOENT) => {}
            }
            return [1, 2][0]
          }
          param P in 4..=8
          actor a x 2 { f(1, 2) }
          variant base-line extends x.y-2 { expect holds }
        }
    "#]]
    .assert_eq(&formatted);
    assert_eq!(fmt(&formatted), formatted);
    assert_eq!(fingerprint_tokens(messy), fingerprint_tokens(&formatted));
}

#[test]
fn operators_that_would_merge_keep_a_space() {
    // `= =` is two tokens; written `==` it would be one.
    let src = "scenario s {\n  x = = y\n  a . . = b\n}\n";
    let out = fmt(src);
    assert!(out.contains("x = = y"), "{out}");
    assert_eq!(fingerprint_tokens(src), fingerprint_tokens(&out));
}

#[test]
fn a_file_that_does_not_lex_is_an_error_with_its_position() {
    let Err(FmtError::Syntax(diags)) = format("scenario s {\n  x = \"open\n}\n") else {
        panic!("an unterminated string formatted");
    };
    assert_eq!(diags[0].message, "unterminated string");
}

/// Every `.race` file under `dir`, sorted.
fn race_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read scenarios")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "race"))
        .collect();
    files.sort();
    files
}

/// The built-in scenarios and libraries: already formatted (so `racelab fmt` is a no-op on
/// them), and formatting keeps their token fingerprint (so their replay tokens stay valid)
/// and is idempotent.
#[test]
fn built_in_scenarios_and_libraries_are_fmt_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let files: Vec<PathBuf> = race_files(&root)
        .into_iter()
        .chain(race_files(&root.join("lib")))
        .collect();
    assert!(files.len() >= 15, "found only {files:?}");
    let mut not_clean = Vec::new();
    for f in &files {
        let src = std::fs::read_to_string(f).expect("read scenario");
        let out = fmt(&src);
        assert_eq!(
            fingerprint_tokens(&src),
            fingerprint_tokens(&out),
            "{}",
            f.display()
        );
        assert_eq!(fmt(&out), out, "not idempotent on {}", f.display());
        if out != src {
            not_clean.push(f.display().to_string());
        }
    }
    assert!(not_clean.is_empty(), "run `racelab fmt` on: {not_clean:?}");
}

#[test]
fn racelab_new_writes_a_formatted_scenario() {
    let src = racelab::starter::scenario("starter");
    assert_eq!(fmt(&src), src);
}

/// The printer's contract on `src`: it formats it (if it lexes), keeps its token fingerprint,
/// and formatting again changes nothing.
fn fmt_contract(src: &str) -> Result<(), TestCaseError> {
    match format(src) {
        Ok(out) => {
            prop_assert_eq!(fingerprint_tokens(src), fingerprint_tokens(&out));
            match format(&out) {
                Ok(again) => prop_assert_eq!(again, out, "not idempotent"),
                Err(e) => prop_assert!(false, "formatted text does not format: {:?}", e),
            }
        }
        Err(FmtError::Syntax(diags)) => prop_assert!(!diags.is_empty()),
        Err(FmtError::Changed { at }) => {
            prop_assert!(false, "the printer would change the tokens at byte {}", at)
        }
    }
    Ok(())
}

/// The fuzz tokens that lex on their own (no stray quote, byte or bad unit), so that most
/// soups of them format.
fn lexable_tokens() -> Vec<&'static str> {
    TOKENS
        .iter()
        .copied()
        .filter(|t| format(t).is_ok())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::fuzz::cases(256), ..ProptestConfig::default() })]

    #[test]
    fn fmt_keeps_tokens_and_is_idempotent_on_mutated_scenarios(
        seed in 0..SEEDS.len(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let mut src = SEEDS[seed].to_string();
        for m in &mutations {
            src = apply(&src, m);
        }
        fmt_contract(&src)?;
    }

    #[test]
    fn fmt_keeps_tokens_and_is_idempotent_on_token_soups(
        toks in proptest::collection::vec(prop::sample::select(lexable_tokens()), 0..60),
        seps in proptest::collection::vec(prop::sample::select(&["", " ", "  ", "\n", "\n\n", " # c\n", "\t", "\r\n", " #x"][..]), 60),
    ) {
        let src: String = toks.iter().zip(&seps).map(|(t, s)| format!("{t}{s}")).collect();
        // Glued tokens may not lex (`3` `x` is `3x`, a bad unit): the contract holds either way.
        fmt_contract(&src)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::fuzz::cases(32), ..ProptestConfig::default() })]

    #[test]
    fn fmt_keeps_tokens_and_is_idempotent_on_deep_nesting(levels in proptest::collection::vec(0..NESTERS.len(), 0..300)) {
        fmt_contract(&nested_scenario(&levels))?;
    }
}

#[test]
fn fmt_check_lists_unformatted_files_and_fmt_rewrites_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clean = "scenario ok {\n  cell c = 0\n}\n";
    let messy = "scenario messy {\ncell c=0\n}\n";
    std::fs::write(dir.path().join("ok.race"), clean).expect("write");
    std::fs::write(dir.path().join("messy.race"), messy).expect("write");
    let (code, stdout, stderr) = racelab(dir.path(), &["fmt", "--check", "ok.race", "messy.race"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_eq!(
        stdout,
        "messy.race:2: not formatted\n-cell c=0\n+  cell c = 0\n"
    );
    assert!(stderr.contains("1 file is not formatted"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("messy.race")).expect("read"),
        messy
    );

    let (code, stdout, stderr) = racelab(dir.path(), &["fmt", "ok.race", "messy.race"]);
    assert_eq!(
        (code, stdout.as_str()),
        (0, "messy.race: formatted\n"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("messy.race")).expect("read"),
        "scenario messy {\n  cell c = 0\n}\n"
    );
    // Nothing left behind: the two files only, no temporary file.
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 2);
    let (code, _, stderr) = racelab(dir.path(), &["fmt", "--check", "ok.race", "messy.race"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn fmt_refuses_files_that_do_not_lex_with_file_line_col() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "string.race",
            b"scenario s {\n  about \"open\n}\n",
            "string.race:2:9",
        ),
        (
            "latin1.race",
            b"scenario s {\n  # caf\xe9\n}\n",
            "latin1.race:2:8",
        ),
        (
            "unit.race",
            b"scenario s {\n  const T = 5q\n}\n",
            "unit.race:2:14",
        ),
    ];
    for (name, bytes, at) in cases {
        std::fs::write(dir.path().join(name), bytes).expect("write");
        let (code, _, stderr) = racelab(dir.path(), &["fmt", name]);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stderr.contains(at), "{name}: no {at} in\n{stderr}");
        assert_eq!(
            std::fs::read(dir.path().join(name)).expect("read"),
            *bytes,
            "{name} changed"
        );
    }
    let (code, _, stderr) = racelab(dir.path(), &["fmt", "--check", "missing.race"]);
    assert_eq!(code, 2, "{stderr}");
    std::fs::write(
        dir.path().join("t.spec"),
        "session s1\nstep a { SELECT 1; }\n",
    )
    .expect("write");
    let (code, _, stderr) = racelab(dir.path(), &["fmt", "t.spec"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("*.race"), "{stderr}");
}

#[test]
fn fmt_refuses_pathological_nesting_with_a_position() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n = 5000;
    let ifs = format!(
        "scenario deep {{\n  actor a {{\n{}set c = 1\n{}  }}\n}}\n",
        "if true {\n".repeat(n),
        "}\n".repeat(n)
    );
    let parens = format!(
        "scenario deep {{\n  actor a {{\n    set c = {}1{}\n  }}\n}}\n",
        "(".repeat(50_000),
        ")".repeat(50_000)
    );
    for (name, src, at) in [
        ("ifs.race", ifs, "ifs.race:1001:"),
        ("parens.race", parens, "parens.race:3:"),
    ] {
        std::fs::write(dir.path().join(name), &src).expect("write");
        let (code, _, stderr) = racelab(dir.path(), &["fmt", name]);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(
            stderr.contains("nested too deeply to format"),
            "{name}: {stderr}"
        );
        assert!(stderr.contains(at), "{name}: no {at} in\n{stderr}");
    }
}
