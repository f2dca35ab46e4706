//! The scenario language through the `racelab` binary: hostile files (thousands of nested
//! blocks, tens of thousands of parentheses, bytes that are not UTF-8) get exit 2 and a
//! diagnostic with file:line:col, never a crash.

use std::path::Path;
use std::process::Command;

const RACELAB: &str = env!("CARGO_BIN_EXE_racelab");

/// Runs `racelab ARGS` in `dir` and returns its exit code, stdout and stderr.
pub(crate) fn racelab(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(RACELAB)
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("racelab runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `bytes` to `name` in a fresh directory and runs `racelab check name` there.
fn check_file(name: &str, bytes: &[u8]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(name), bytes).expect("write");
    let (code, _, stderr) = racelab(dir.path(), &["check", name]);
    (code, stderr)
}

fn scenario_around(body: &str) -> String {
    format!("scenario deep {{\n  cell c = 0\n  actor a {{\n{body}\n  }}\n  invariant i: always c == 0\n}}\n")
}

#[test]
fn five_thousand_nested_ifs_are_refused_with_a_position() {
    let n = 5000;
    let body = format!("{}set c = 1\n{}", "if true {\n".repeat(n), "}\n".repeat(n));
    let (code, err) = check_file("ifs.race", scenario_around(&body).as_bytes());
    assert_eq!(code, 2, "{err}");
    // Line 3 opens the actor (level 1); the 99th `if` (line 103) opens level 101.
    assert!(err.contains("ifs.race:103:9"), "{err}");
    assert!(
        err.contains("nested too deeply: more than 100 levels"),
        "{err}"
    );
    assert!(err.contains("split the code into procedures"), "{err}");
    assert!(
        err.contains("1 error in ifs.race"),
        "one diagnostic, no noise: {err}"
    );
}

#[test]
fn fifty_thousand_parentheses_are_refused_with_a_position() {
    let n = 50_000;
    let body = format!("    set c = {}1{}", "(".repeat(n), ")".repeat(n));
    let (code, err) = check_file("parens.race", scenario_around(&body).as_bytes());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("parens.race:4:"), "{err}");
    assert!(err.contains("nested too deeply"), "{err}");
}

#[test]
fn long_operator_chains_and_else_if_chains_are_refused_too() {
    // Neither recurses in the parser, but both build a tree as deep as they are long.
    let chain = format!("    set c = 1{}", " + 1".repeat(50_000));
    let (code, err) = check_file("chain.race", scenario_around(&chain).as_bytes());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("chain.race:4:"), "{err}");
    let elifs = format!("    if false {{}}{}", " else if false {}".repeat(5000));
    let (code, err) = check_file("elif.race", scenario_around(&elifs).as_bytes());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nested too deeply"), "{err}");
    let matches = format!(
        "    {}set c = 1{}",
        "match c { _ => ".repeat(5000),
        "}".repeat(5000)
    );
    let (code, err) = check_file("match.race", scenario_around(&matches).as_bytes());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nested too deeply"), "{err}");
}

#[test]
fn nesting_just_under_the_limit_checks_and_explores() {
    // 60 `if`s inside the actor's block, and an expression in 18 parentheses (each adds a
    // parenthesis and an operator: 36 levels) evaluated at the innermost step: 97 levels.
    let n = 60;
    let deep_expr = format!("{}c{}", "(c + ".repeat(18), ")".repeat(18));
    let body = format!(
        "{}set c = {deep_expr} + 1\n{}",
        "if c == 0 {\n".repeat(n),
        "}\n".repeat(n)
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let mut src = scenario_around(&body);
    src.insert_str(src.len() - 2, "\n  expect violates i");
    std::fs::write(dir.path().join("ok.race"), src).expect("write");
    let (code, out, err) = racelab(dir.path(), &["check", "ok.race"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = racelab(
        dir.path(),
        &[
            "explore",
            "ok.race",
            "--engine",
            "native-dfs",
            "--schedules",
            "50",
        ],
    );
    // The invariant `c == 0` breaks at the write, as expected.
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("violation (i), expected violation (i)"),
        "{out}"
    );
}

#[test]
fn a_file_that_is_not_utf8_is_refused_at_its_first_invalid_byte() {
    let src = b"scenario x {\n  cell c = 0\n  actor a { set c = \"caf\xe9\" }\n}\n";
    let (code, err) = check_file("latin1.race", src);
    assert_eq!(code, 2, "{err}");
    // Line 3, column 25: the byte after `caf`.
    assert!(err.contains("latin1.race:3:25"), "{err}");
    assert!(err.contains("the file is not UTF-8 text"), "{err}");
    assert!(err.contains("byte 0xE9 is not valid UTF-8 here"), "{err}");
    assert!(err.contains('^') || err.contains('┬'), "a caret: {err}");
}

#[test]
fn an_isolation_spec_that_is_not_utf8_is_refused_at_its_first_invalid_byte() {
    let src = b"session s1\nstep a { SELECT '\xff' }\n";
    let (code, err) = check_file("bad.spec", src);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.spec:2:18"), "{err}");
    assert!(err.contains("byte 0xFF"), "{err}");
}

#[test]
fn racelab_new_writes_a_scenario_that_checks_and_whose_racy_variant_breaks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (code, out, err) = racelab(dir.path(), &["new", "my-race"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("wrote my-race.race"), "{out}");
    let text = std::fs::read_to_string(dir.path().join("my-race.race")).expect("written");
    assert!(text.contains("scenario my-race {"), "{text}");
    assert!(
        text.lines()
            .filter(|l| l.trim_start().starts_with('#'))
            .count()
            >= 10,
        "commented"
    );

    let (code, out, err) = racelab(dir.path(), &["check", "my-race.race"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok (2 variants: racy, fixed)"), "{out}");

    // Exhaustively: the racy variant breaks `exclusive`, the fixed one is proved to hold.
    let (code, out, err) = racelab(
        dir.path(),
        &["explore", "my-race.race", "--engine", "native-dfs"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("my-race/racy [native-dfs, model]: violation (exclusive), expected violation (exclusive)"),
        "{out}"
    );
    assert!(
        out.contains("my-race/fixed [native-dfs, model]: holds, expected holds"),
        "{out}"
    );
    assert!(out.contains("proof over every reachable state"), "{out}");
    // And with the default engine, as a new user would run it.
    let (code, out, err) = racelab(
        dir.path(),
        &["explore", "my-race.race", "--schedules", "2000"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("violation (exclusive)"), "{out}");
}

#[test]
fn racelab_new_refuses_to_overwrite_and_refuses_bad_names() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("mine.race"), "my own work\n").expect("write");
    let (code, _, err) = racelab(dir.path(), &["new", "mine"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("mine.race already exists"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("mine.race")).unwrap(),
        "my own work\n",
        "untouched"
    );
    // `NAME.race` is accepted as the name too.
    let (code, _, err) = racelab(dir.path(), &["new", "mine.race"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = racelab(dir.path(), &["new", "2fast"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`2fast` is not a scenario name"), "{err}");
    assert!(!dir.path().join("2fast.race").exists());
}
