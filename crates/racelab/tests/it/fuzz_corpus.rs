//! The fuzz corpus: minimised inputs that once broke racelab or sit at its limits (5,000
//! nested `if`s, 50,000 parentheses, a byte that is not UTF-8, half-written constructs,
//! broken specs, corrupted replay tokens), in `data/fuzz-corpus/`. Every run replays them all:
//! each must be refused with a diagnostic (file:line:col for scenarios and specs, a message for
//! tokens), never a panic. A proptest failure found later is minimised and added here.

use std::path::{Path, PathBuf};

use proptest::test_runner::TestCaseError;
use racelab_core::lang::fmt::{format, FmtError};
use racelab_core::lang::{compile_with_loader, decode_source, MemLoader};
use racelab_core::schedule::Schedule;
use racelab_real::pgspec::{parse_named, LoadError};

use crate::fuzz::compile_checked;
use crate::fuzz::SEED_SMALL_CONSTRUCTS;
use crate::fuzz_spec::spec_checked;
use crate::fuzz_token::{replay_like_the_cli, token_checked, token_programs};
use crate::lang_cli::racelab;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/data/fuzz-corpus")
}

/// The corpus files with extension `ext`, sorted.
fn corpus(ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("the corpus directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn passed(r: Result<(), TestCaseError>, file: &Path) {
    if let Err(e) = r {
        panic!("{}: {e}", file.display());
    }
}

#[test]
fn corpus_scenarios_are_refused_with_a_position_and_format_or_are_refused_by_fmt() {
    let files = corpus("race");
    assert!(files.len() >= 10, "{files:?}");
    for f in &files {
        let bytes = std::fs::read(f).expect("read");
        let src = match decode_source(&name(f), bytes) {
            Ok(src) => src,
            Err(e) => {
                assert!(e.diags[0].span.end > 0, "{}: no position", f.display());
                continue;
            }
        };
        passed(compile_checked(&src), f);
        let refused =
            compile_with_loader(&name(f), &src, &Default::default(), &MemLoader::default());
        assert!(
            refused.is_err(),
            "{} compiles: it is not a bad input",
            f.display()
        );
        match format(&src) {
            Ok(out) => assert_eq!(
                format(&out).ok().as_deref(),
                Some(out.as_str()),
                "{}",
                f.display()
            ),
            Err(FmtError::Syntax(diags)) => assert!(!diags.is_empty()),
            Err(FmtError::Changed { at }) => {
                panic!("{}: fmt would change the tokens at {at}", f.display())
            }
        }
    }
}

#[test]
fn corpus_specs_are_refused_with_a_position() {
    let files = corpus("spec");
    assert!(files.len() >= 5, "{files:?}");
    for f in &files {
        let bytes = std::fs::read(f).expect("read");
        let Ok(src) = decode_source(&name(f), bytes) else {
            continue;
        };
        passed(spec_checked(&src), f);
        assert!(
            matches!(parse_named(&name(f), &src), Err(LoadError::Syntax(_))),
            "{} parses: it is not a bad input",
            f.display()
        );
    }
}

#[test]
fn corpus_tokens_are_refused_by_every_seed_variant() {
    let files = corpus("token");
    assert!(files.len() >= 5, "{files:?}");
    let progs = token_programs();
    for f in &files {
        let token = std::fs::read_to_string(f).expect("read");
        for variant in ["base", "none"] {
            passed(
                replay_like_the_cli(SEED_SMALL_CONSTRUCTS, variant, &token),
                f,
            );
        }
        for prog in progs {
            passed(token_checked(prog, &token), f);
            let replayed =
                Schedule::decode(&token).and_then(|s| racelab_core::replay::replay(prog, &s));
            assert!(
                replayed.is_err(),
                "{} replays on {}/{}",
                f.display(),
                prog.scenario,
                prog.variant
            );
        }
    }
}

/// The corpus through the command line, in one run: `racelab check` refuses every scenario
/// and spec with exit 2 and a file:line:col for each.
#[test]
fn racelab_check_refuses_the_whole_corpus_with_positions() {
    let dir = corpus_dir();
    let files: Vec<String> = corpus("race")
        .iter()
        .chain(&corpus("spec"))
        .map(|p| name(p))
        .collect();
    let args: Vec<&str> = std::iter::once("check")
        .chain(files.iter().map(String::as_str))
        .collect();
    let (code, stdout, stderr) = racelab(&dir, &args);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(!stdout.contains(": ok"), "a corpus file checks: {stdout}");
    for f in &files {
        let at = format!("{f}:");
        let positioned = stderr.match_indices(&at).any(|(i, _)| {
            let rest = &stderr[i + at.len()..];
            let digits = |s: &str| s.chars().take_while(char::is_ascii_digit).count();
            let line = digits(rest);
            line > 0 && rest[line..].starts_with(':') && digits(&rest[line + 1..]) > 0
        });
        assert!(positioned, "no {f}:LINE:COL in\n{stderr}");
    }
}
