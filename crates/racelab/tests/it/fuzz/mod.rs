//! Property tests for the scenario front end: `compile` never panics, on noise or on
//! near-valid programs, and every failure renders as a non-empty report naming the file.

use proptest::prelude::*;
use racelab_core::lang::{compile_with_loader, render_plain, MemLoader, ScenarioErrors};

mod properties;

const FILE: &str = "fuzz.race";

/// How many cases a property test runs: `n` in CI (a few seconds for all of them), and
/// `RACELAB_FUZZ_SCALE` times as many for a longer campaign on a developer's machine
/// (`RACELAB_FUZZ_SCALE=100 cargo test -p racelab --test it -- fuzz`). A failure is saved by
/// proptest under `crates/racelab/tests/proptest-regressions/` and replayed first on every run; its
/// minimised input also belongs in `data/fuzz-corpus/` (see fuzz_corpus.rs).
pub(crate) fn cases(n: u32) -> u32 {
    let scale = std::env::var("RACELAB_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    n.saturating_mul(scale)
}

const MAILMAN: &str = include_str!("../../../../../scenarios/mailman-lockfile.race");
/// The library MAILMAN imports, as `fuzz.race`'s import finds it.
const MAILMAN_LIB_PATH: &str = "lib/mailman-lockfile.race";
const MAILMAN_LIB: &str = include_str!("../../../../../scenarios/lib/mailman-lockfile.race");
const FLUFL_LIB_PATH: &str = "lib/flufl-lock.race";
const FLUFL_LIB: &str = include_str!("../../../../../scenarios/lib/flufl-lock.race");
const PATCHWORK_LIB_PATH: &str = "lib/patchwork-person.race";
const PATCHWORK_LIB: &str = include_str!("../../../../../scenarios/lib/patchwork-person.race");

/// Built-in scenarios that, between them, use every construct of the language: faults, NFS,
/// `between` durations and finally-style unlocking (mailman-stale-lock), the gate (filelock),
/// databases and imports (patchwork-person), parameters, `with` and lock acquisition (django).
const MAILMAN_STALE: &str = include_str!("../../../../../scenarios/mailman-stale-lock.race");
const FILELOCK: &str = include_str!("../../../../../scenarios/filelock.race");
const PATCHWORK: &str = include_str!("../../../../../scenarios/patchwork-person.race");
const DJANGO: &str = include_str!("../../../../../scenarios/django-import-deadlock.race");

/// What no built-in scenario uses yet: `try`/`finally`, faults and a fault budget in a
/// variant, `param` ranges, and `between` in a loop.
const SMALL_CONSTRUCTS: &str = r#"scenario constructs {
  const DIR = "/d"
  param ROUNDS in 1..=2
  cell n = 0
  log events
  fs { dir DIR }
  proc process(msg) {
    write("{DIR}/{msg}", msg)
    sleep between(10ms, 20ms)
  }
  actor worker x 2 {
    let i = 0
    while i < ROUNDS {
      try {
        process("m{self}")
        set n = n + 1
      } finally {
        unlink("{DIR}/m{self}") ignore ENOENT
        append events "done {self}"
      }
      i = i + 1
    }
  }
  fault kill: crash worker1
  fault gc: stall worker2 for 30s
  faults 1
  invariant counted: at end n <= ROUNDS * 2
  variant base { expect holds }
  variant none extends base {
    faults 0
  }
}
"#;

/// A scenario that imports some of a library (and what it uses).
const SMALL_IMPORT: &str = r#"scenario importer {
  const LOCKFILE = "/l/lock"
  const LIFETIME = 15s
  fs { dir "/l" }
  import "lib/flufl-lock.race" { touch_, break_by_name }
  actor a x 2 {
    touch_(LOCKFILE)
    break_by_name()
  }
  expect holds
}
"#;

/// The libraries the seeds import, held in memory (mutations may name any other file: those
/// are missing).
fn libraries(mailman_lib: &str, flufl_lib: &str) -> MemLoader {
    MemLoader(
        [
            (MAILMAN_LIB_PATH.to_string(), mailman_lib.to_string()),
            (FLUFL_LIB_PATH.to_string(), flufl_lib.to_string()),
            (PATCHWORK_LIB_PATH.to_string(), PATCHWORK_LIB.to_string()),
        ]
        .into_iter()
        .collect(),
    )
}

fn compile(file: &str, src: &str) -> Result<racelab_core::lang::Scenario, ScenarioErrors> {
    compile_with_loader(
        file,
        src,
        &Default::default(),
        &libraries(MAILMAN_LIB, FLUFL_LIB),
    )
}

const SMALL_COUNTER: &str = r#"scenario counter {
  about "two workers increment a shared counter without a lock"
  source "textbook"
  const ROUNDS = 2
  cell n = 0
  log events
  actor worker x 2 {
    let i = 0
    while i < ROUNDS {
      let v = n
      set n = v + 1
      append events "worker {self} wrote {v + 1}"
      i = i + 1
    }
  }
  invariant total: at end n == ROUNDS * 2
  invariant quiet: always count(events, "x") >= 0
  expect violates total
}
"#;

const SMALL_FILES: &str = r#"scenario files {
  const DIR = "/tmp/d"
  const T = 10ms
  fs {
    dir "/tmp"
    dir DIR
    file "{DIR}/a" = "hello {{world}}"
  }
  proc try_lock(path) {
    match create(path, excl) {
      ok => return true
      err(EEXIST) => return false
      err(e) => fail "create: {e}"
    }
  }
  actor a x 2 {
    loop {
      if try_lock("{DIR}/lock") { break } else if true { sleep T } else { continue }
    }
    critical held {
      match stat("{DIR}/a") {
        ok(st) => assert st.nlink == 1 and st.size > 0, "odd {st.ino} {st.mtime}"
        err => {}
      }
      write("{DIR}/b", "x")
      rename("{DIR}/b", "{DIR}/c")
      link("{DIR}/c", "{DIR}/d")
      touch("{DIR}/d")
      utime("{DIR}/d", now + 1m)
      match read("{DIR}/d") {
        "x" => {}
        _ => {}
      }
      unlink("{DIR}/c")
      unlink("{DIR}/d")
      mkdir("{DIR}/e")
      rmdir("{DIR}/e")
    }
    unlink("{DIR}/lock") ignore ENOENT, EEXIST
  }
  invariant one: always holders(held) <= 1
  invariant gone: at end not exists("{DIR}/lock") and read("{DIR}/a") != none
  variant base { expect holds }
  variant slow {
    const T = 1h
    proc try_lock(p) { return not false }
    expect violates one, deadlock
  }
  variant slower extends slow {
    const T = 2h
  }
}
"#;

/// Lists, maps and fallbacks: every collection construct once.
const SMALL_COLLECTIONS: &str = r#"scenario pids {
  cell alive = map {}
  cell queue = []
  const PIDS = [1, 2]
  fs { dir "/d" }
  actor worker x 2 {
    set alive[self] = true
    set queue = push(queue, self)
    let seen = map { "a": [1], "b": map {} }
    seen["c"] = len(PIDS)
    for p in PIDS {
      if p in seen["a"] { continue }
      seen = put(seen, str(p), rest(queue))
    }
    let s = read("/d/pid") or read("/d/old") or ""
    let q = remove(queue, self)
    assert len(q) <= 2 and seen["c"] == 2, "odd {q[0]}"
  }
  invariant all: at end len(alive) == 2 and alive["worker1"] and not ("x" in alive)
  expect holds
}
"#;

pub(crate) const SEEDS: &[&str] = &[
    MAILMAN,
    SMALL_COUNTER,
    SMALL_FILES,
    SMALL_IMPORT,
    SMALL_CONSTRUCTS,
    MAILMAN_STALE,
    FILELOCK,
    PATCHWORK,
    DJANGO,
    SMALL_COLLECTIONS,
];

pub(crate) const TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "=",
    "=>",
    ",",
    "\"",
    "x",
    "3",
    "15s",
    "loop",
    "match",
    "err(",
    "ok",
    "break",
    "ENOENT",
    "proc",
    "actor",
    "\n",
    " ",
    "{}",
    "\"{\"",
    "\"{}\"",
    "-",
    ".",
    "not",
    "and",
    "let",
    "if",
    "else",
    "variant",
    "expect",
    "invariant",
    "always",
    "at end",
    "holders(",
    "count(",
    "critical",
    "return",
    "5q",
    "@",
    "#",
    "\\",
    "é",
    "0",
    "99999999999999999999",
    "_",
    "continue",
    "set",
    "cell",
    "const",
    "fs",
    "dir",
    "extends",
    "ignore",
    "try {",
    "} finally {",
    "ENOENT,",
    "import",
    "library",
    "\"lib/mailman-lockfile.race\"",
    "\"lib/flufl-lock.race\" { touch_ }",
    "fault",
    "fault k: crash a",
    "crash",
    "stall",
    "for 30s",
    "signal",
    "TERM then kill after 3s",
    "faults",
    "between(",
    "10ms, 20ms)",
    "param",
    "in 1..=3",
    "..=",
    "gate",
    "\"python3 x.py\"",
    "nfs",
    "database {",
    "sql(",
    "IntegrityError",
    "with",
    "acquire",
    "release",
    "lock",
    "rlock",
    "work",
    "on",
    "exit",
    "[",
    "]",
    "[]",
    "map",
    "map {",
    "map {}",
    "\"k\":",
    ":",
    "in",
    "for",
    "for x in",
    "or",
    "or \"\"",
    "read(\"/f\")",
    "c[",
    "x[0]",
    "set c[0] =",
    "push(",
    "put(",
    "rest(",
    "remove(",
];

#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    /// Delete the bytes of a range (positions are fractions of the current length).
    Delete(f64, f64),
    /// Insert a token at a position.
    Insert(f64, usize),
    /// Duplicate one line.
    DupLine(f64),
    /// Swap two lines.
    SwapLines(f64, f64),
    /// Cut the text at a position.
    Truncate(f64),
}

pub(crate) fn mutation() -> impl Strategy<Value = Mutation> {
    let frac = || 0.0..1.0f64;
    prop_oneof![
        (frac(), 0.0..0.05f64).prop_map(|(a, len)| Mutation::Delete(a, len)),
        (frac(), 0..TOKENS.len()).prop_map(|(a, t)| Mutation::Insert(a, t)),
        frac().prop_map(Mutation::DupLine),
        (frac(), frac()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        frac().prop_map(Mutation::Truncate),
    ]
}

/// The char boundary at or before the fraction `f` of `s`.
fn at(s: &str, f: f64) -> usize {
    let mut i = ((s.len() as f64) * f) as usize;
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

pub(crate) fn apply(src: &str, m: &Mutation) -> String {
    match *m {
        Mutation::Delete(a, len) => {
            let start = at(src, a);
            let end = at(src, (a + len).min(1.0)).max(start);
            format!("{}{}", &src[..start], &src[end..])
        }
        Mutation::Insert(a, t) => {
            let i = at(src, a);
            format!("{}{}{}", &src[..i], TOKENS[t], &src[i..])
        }
        Mutation::DupLine(a) => {
            let mut lines: Vec<&str> = src.lines().collect();
            if !lines.is_empty() {
                let i = ((lines.len() as f64 * a) as usize).min(lines.len() - 1);
                lines.insert(i, lines[i]);
            }
            lines.join("\n")
        }
        Mutation::SwapLines(a, b) => {
            let mut lines: Vec<&str> = src.lines().collect();
            if !lines.is_empty() {
                let n = lines.len();
                lines.swap(
                    ((n as f64 * a) as usize).min(n - 1),
                    ((n as f64 * b) as usize).min(n - 1),
                );
            }
            lines.join("\n")
        }
        Mutation::Truncate(a) => src[..at(src, a)].to_string(),
    }
}

/// Compiles `src`; on failure, the plain rendering must be non-empty and name the file.
pub(crate) fn compile_checked(src: &str) -> Result<(), TestCaseError> {
    compile_checked_with(src, &libraries(MAILMAN_LIB, FLUFL_LIB))
}

/// [`compile_checked`] with the libraries `loader` holds. A diagnostic may point into an
/// imported library: its span is then past the scenario's text, within the libraries'.
fn compile_checked_with(src: &str, loader: &MemLoader) -> Result<(), TestCaseError> {
    if let Err(e) = compile_with_loader(FILE, src, &Default::default(), loader) {
        prop_assert!(!e.diags.is_empty(), "an error without diagnostics");
        let text = render_plain(&e);
        prop_assert!(
            !text.trim().is_empty(),
            "empty rendering for {} diagnostics",
            e.diags.len()
        );
        prop_assert!(
            text.contains(FILE) || text.contains("lib/"),
            "rendering names neither the file nor a library:\n{text}"
        );
        let all_files = src.len() + loader.0.values().map(|l| l.len() + 1).sum::<usize>();
        for d in &e.diags {
            prop_assert!(
                d.span.start <= d.span.end && d.span.end <= all_files,
                "span {:?} outside the sources",
                d.span
            );
            if d.span.end <= src.len() {
                prop_assert!(
                    src.is_char_boundary(d.span.start) && src.is_char_boundary(d.span.end),
                    "span {:?} splits a character",
                    d.span
                );
            }
            prop_assert!(!d.message.is_empty());
        }
    }
    Ok(())
}

/// Seeds the replay-token tests compile and replay against.
pub(crate) const SEED_SMALL_COUNTER: &str = SMALL_COUNTER;
pub(crate) const SEED_SMALL_FILES: &str = SMALL_FILES;
pub(crate) const SEED_SMALL_CONSTRUCTS: &str = SMALL_CONSTRUCTS;

/// A seed compiled with the seeds' libraries and parameter values (a replay token's).
pub(crate) fn compile_seed_with(
    src: &str,
    params: &std::collections::BTreeMap<String, i64>,
) -> Result<racelab_core::lang::Scenario, ScenarioErrors> {
    compile_with_loader(FILE, src, params, &libraries(MAILMAN_LIB, FLUFL_LIB))
}

/// A seed compiled with the seeds' libraries; it must compile.
pub(crate) fn compile_seed(src: &str) -> racelab_core::lang::Scenario {
    compile(FILE, src).unwrap_or_else(|e| panic!("a seed does not compile:\n{}", render_plain(&e)))
}

/// One way to nest: the opening and closing text around the inner level, and whether it is a
/// statement (wraps statements) or an expression (wraps an expression).
pub(crate) const NESTERS: &[(&str, &str, bool)] = &[
    ("if c == 0 {\n", "\n}", true),
    ("while c < 1 {\n", "\nbreak\n}", true),
    ("loop {\n", "\nbreak\n}", true),
    ("critical s {\n", "\n}", true),
    ("match c { _ => ", " }", true),
    ("if false {} else if c == 0 {\n", "\n}", true),
    ("try {\n", "\n} finally { set c = 1 }", true),
    ("try { set c = 2 } finally {\n", "\n}", true),
    ("(", ")", false),
    ("not ", "", false),
    ("-", "", false),
    ("1 + ", "", false),
    ("id(", ")", false),
    ("\"{", "}\"", false),
    ("for x in [1] {\n", "\n}", true),
    ("[", "]", false),
    ("map { 1: ", " }", false),
    ("[c][", "]", false),
    ("read(\"/f\") or ", "", false),
];

/// A scenario whose actor nests the chosen constructs, statements outside, expressions inside.
pub(crate) fn nested_scenario(levels: &[usize]) -> String {
    let (stmts, exprs): (Vec<usize>, Vec<usize>) = levels.iter().partition(|&&i| NESTERS[i].2);
    let wrap = |inner: String, which: &[usize]| {
        which.iter().rev().fold(inner, |inner, &i| {
            format!("{}{inner}{}", NESTERS[i].0, NESTERS[i].1)
        })
    };
    let expr = wrap("c".to_string(), &exprs);
    let body = wrap(format!("set c = {expr}"), &stmts);
    format!(
        "scenario s {{\n  cell c = 0\n  proc id(v) {{ return v }}\n  actor a {{\n{body}\n  }}\n  invariant i: always c >= -1000\n}}\n"
    )
}
