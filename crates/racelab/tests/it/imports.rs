//! `import "lib/x.race"`: scenarios that take declarations from library files. What imports
//! bring (all, or the named declarations and what they use), that a variant may still replace
//! an imported procedure, every malformed import as a diagnostic in both files (snapshots), and
//! that a replay token is tied to the libraries' contents.

use expect_test::{expect, Expect};
use racelab_core::lang::{compile_with_loader, render_plain, MemLoader, Scenario, ScenarioErrors};

const LOCKS: &str = r#"# A lock file taken with O_EXCL.
library locks {
  const NAP = 100ms

  proc try_lock(path) {
    match create(path, excl) {
      ok          => return true
      err(EEXIST) => return false
    }
  }

  # Polls until the lock is ours.
  proc lock(path) {
    while not try_lock(path) {
      nap()
    }
  }

  proc unlock(path) {
    unlink(path) ignore ENOENT
  }

  proc nap() {
    sleep NAP
  }

  # Not used by lock() or unlock().
  proc unrelated() {
    sleep 1s
  }
}
"#;

fn scenario(imports: &str) -> String {
    format!(
        r#"scenario guarded {{
  about "two workers take a lock file around a counter"
  source "a test"
  {imports}
  const LOCK = "/run/app.lock"
  fs {{ dir "/run" }}
  cell counter = 0

  actor worker x 2 {{
    lock(LOCK)
    let n = counter
    set counter = n + 1
    unlock(LOCK)
  }}

  invariant counted: at end counter == 2

  variant locked {{
    expect holds
  }}
  variant no-lock {{
    # A variant replaces an imported procedure like one of its own.
    proc lock(path) {{}}
    expect violates counted
  }}
}}
"#
    )
}

fn files(list: &[(&str, &str)]) -> MemLoader {
    MemLoader(
        list.iter()
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect(),
    )
}

fn compile(main: &str, loader: &MemLoader) -> Result<Scenario, ScenarioErrors> {
    compile_with_loader("s/guarded.race", main, &Default::default(), loader)
}

fn check_error(main: &str, loader: &MemLoader, expected: Expect) {
    match compile(main, loader) {
        Ok(_) => panic!("compiled:\n{main}"),
        // The header keeps a line at column 0, so expect-test keeps the indentation.
        Err(e) => expected.assert_eq(&format!("{e}\n{}", render_plain(&e))),
    }
}

fn proc_names(sc: &Scenario) -> Vec<String> {
    let mut names: Vec<String> = sc.variants[0]
        .procs
        .iter()
        .map(|p| p.name.to_string())
        .filter(|n| !n.starts_with('<'))
        .collect();
    names.sort();
    names
}

#[test]
fn an_imported_library_is_part_of_the_scenario_and_variants_replace_its_procedures() {
    let loader = files(&[("s/lib/locks.race", LOCKS)]);
    let sc = compile(&scenario(r#"import "lib/locks.race""#), &loader)
        .unwrap_or_else(|e| panic!("{}", render_plain(&e)));
    assert_eq!(sc.variant_names(), ["locked", "no-lock"]);
    let names = proc_names(&sc);
    for p in ["lock", "unlock", "try_lock", "nap", "unrelated"] {
        assert!(names.iter().any(|n| n == p), "{p} missing from {names:?}");
    }
    // The variants run: the lock holds, and the replaced lock() loses an update.
    for v in &sc.variants {
        let prog = std::sync::Arc::new(v.clone());
        let cfg = racelab_core::explore::EngineConfig::new(
            racelab_core::explore::EngineKind::NativeDfs,
            racelab_core::explore::Budget::new(100_000, std::time::Duration::from_secs(30)),
        );
        let mut rows: Vec<_> = racelab_core::explore::portfolio::run(&prog, &[cfg])
            .into_iter()
            .map(|(cfg, r)| racelab_real::suite::result_row("guarded", &prog, &cfg, r))
            .collect();
        racelab_real::suite::judge_portfolio(&mut rows);
        assert!(rows.iter().all(|r| r.met), "{}: {rows:?}", v.variant);
    }
}

#[test]
fn a_selective_import_brings_the_named_declarations_and_what_they_use() {
    let loader = files(&[("s/lib/locks.race", LOCKS)]);
    let sc = compile(
        &scenario(r#"import "lib/locks.race" { lock, unlock }"#),
        &loader,
    )
    .unwrap_or_else(|e| panic!("{}", render_plain(&e)));
    let names = proc_names(&sc);
    assert!(names.contains(&"try_lock".to_string()), "{names:?}");
    assert!(names.contains(&"nap".to_string()), "{names:?}");
    assert!(!names.contains(&"unrelated".to_string()), "{names:?}");
}

#[test]
fn a_library_reached_twice_is_taken_once() {
    let a = "library a {\n  import \"base.race\"\n  proc la() { base() }\n}\n";
    let b = "library b {\n  import \"./base.race\"\n  proc lb() { base() }\n}\n";
    let base = "library base {\n  proc base() { sleep 1ms }\n}\n";
    let loader = files(&[
        ("s/lib/locks.race", LOCKS),
        ("s/lib/a.race", a),
        ("s/lib/b.race", b),
        ("s/lib/base.race", base),
    ]);
    let main = scenario(
        "import \"lib/locks.race\"\n  import \"lib/a.race\"\n  import \"lib/../lib/b.race\"",
    );
    let sc = compile(&main, &loader).unwrap_or_else(|e| panic!("{}", render_plain(&e)));
    assert_eq!(proc_names(&sc).iter().filter(|n| *n == "base").count(), 1);
}

#[test]
fn a_missing_library_is_an_error_at_the_import() {
    check_error(
        &scenario(r#"import "lib/lcoks.race""#),
        &files(&[("s/lib/locks.race", LOCKS)]),
        expect![[r#"
            1 error in s/guarded.race
              × cannot read the library `s/lib/lcoks.race`: No such file or directory (os error 2)
               ╭─[s/guarded.race:4:10]
             3 │   source "a test"
             4 │   import "lib/lcoks.race"
               ·          ────────┬───────
               ·                  ╰── imported here
             5 │   const LOCK = "/run/app.lock"
               ╰────
              help: an import's path is relative to the file that imports it; libraries live in scenarios/lib/
        "#]],
    );
}

#[test]
fn an_import_cycle_is_an_error_in_both_files() {
    let a = "library a {\n  import \"b.race\"\n  proc pa() {}\n}\n";
    let b = "library b {\n  import \"a.race\"\n  proc pb() {}\n}\n";
    check_error(
        &scenario(r#"import "lib/a.race""#),
        &files(&[("s/lib/a.race", a), ("s/lib/b.race", b)]),
        expect![[r#"
            1 error in s/guarded.race
              × libraries import each other in a cycle: `s/lib/a.race` imports `s/lib/b.race` imports `s/lib/
              │ a.race`
               ╭─[s/lib/b.race:2:10]
             1 │ library b {
             2 │   import "a.race"
               ·          ────┬───
               ·              ╰── closes the cycle
             3 │   proc pb() {}
               ╰────
              help: move what both need into a third library that imports neither

            Error: 
              × `s/lib/b.race` is imported here
               ╭─[s/lib/a.race:2:10]
             1 │ library a {
             2 │   import "b.race"
               ·          ────┬───
               ·              ╰── here
             3 │   proc pa() {}
               ╰────
        "#]],
    );
}

#[test]
fn a_name_the_library_does_not_declare_is_an_error_in_both_files() {
    check_error(
        &scenario(r#"import "lib/locks.race" { lock, unlokc }"#),
        &files(&[("s/lib/locks.race", LOCKS)]),
        expect![[r#"
            1 error in s/guarded.race
              × `s/lib/locks.race` declares no `unlokc`
               ╭─[s/guarded.race:4:35]
             3 │   source "a test"
             4 │   import "lib/locks.race" { lock, unlokc }
               ·                                   ───┬──
               ·                                      ╰── not in the library
             5 │   const LOCK = "/run/app.lock"
               ╰────
              help: did you mean `unlock`?

            Error: 
              × the library
               ╭─[s/lib/locks.race:2:1]
             1 │ # A lock file taken with O_EXCL.
             2 │ library locks {
               · ───┬───
               ·    ╰── here
             3 │   const NAP = 100ms
               ╰────
        "#]],
    );
}

#[test]
fn a_declaration_in_the_scenario_and_in_a_library_is_a_conflict_in_both_files() {
    let main = scenario(r#"import "lib/locks.race""#).replace(
        "  cell counter = 0\n",
        "  cell counter = 0\n  proc unlock(path) { unlink(path) }\n",
    );
    check_error(
        &main,
        &files(&[("s/lib/locks.race", LOCKS)]),
        expect![[r#"
            1 error in s/guarded.race
              × procedure `unlock` is declared twice: here and in `s/lib/locks.race`
               ╭─[s/guarded.race:4:3]
             3 │   source "a test"
             4 │   import "lib/locks.race"
               ·   ───────────┬───────────
               ·              ╰── imported here
             5 │   const LOCK = "/run/app.lock"
             6 │   fs { dir "/run" }
             7 │   cell counter = 0
             8 │   proc unlock(path) { unlink(path) }
               ·        ───┬──
               ·           ╰── declared again here
             9 │ 
               ╰────
              help: rename one of them, or import only what you need: `import "PATH" { name, ... }`; to change
                    an imported procedure in one variant, replace it there

            Error: 
              × first declared here
                ╭─[s/lib/locks.race:19:8]
             18 │ 
             19 │   proc unlock(path) {
                ·        ───┬──
                ·           ╰── here
             20 │     unlink(path) ignore ENOENT
                ╰────
        "#]],
    );
}

#[test]
fn two_libraries_declaring_one_name_conflict() {
    let other = "library other {\n  const NAP = 1s\n}\n";
    check_error(
        &scenario("import \"lib/locks.race\"\n  import \"lib/other.race\""),
        &files(&[("s/lib/locks.race", LOCKS), ("s/lib/other.race", other)]),
        expect![[r#"
            1 error in s/guarded.race
              × constant `NAP` is declared twice: here and in `s/lib/locks.race`
               ╭─[s/lib/other.race:2:9]
             1 │ library other {
             2 │   const NAP = 1s
               ·         ─┬─
               ·          ╰── declared again here
             3 │ }
               ╰────
              help: rename one of them, or import only what you need: `import "PATH" { name, ... }`; to change
                    an imported constant in one variant, replace it there

            Error: 
              × first declared here
               ╭─[s/lib/locks.race:3:9]
             2 │ library locks {
             3 │   const NAP = 100ms
               ·         ─┬─
               ·          ╰── here
             4 │ 
               ╰────

            Error: 
              × imported here
               ╭─[s/guarded.race:5:3]
             4 │   import "lib/locks.race"
             5 │   import "lib/other.race"
               ·   ───────────┬───────────
               ·              ╰── here
             6 │   const LOCK = "/run/app.lock"
               ╰────

            Error: 
              × imported here
               ╭─[s/guarded.race:4:3]
             3 │   source "a test"
             4 │   import "lib/locks.race"
               ·   ───────────┬───────────
               ·              ╰── here
             5 │   import "lib/other.race"
               ╰────
        "#]],
    );
}

#[test]
fn importing_a_scenario_is_an_error_in_both_files() {
    let other = "scenario other {\n  proc p() {}\n}\n";
    check_error(
        &scenario(r#"import "other.race""#),
        &files(&[("s/other.race", other)]),
        expect![[r#"
            1 error in s/guarded.race
              × `s/other.race` is a scenario, not a library
               ╭─[s/guarded.race:4:10]
             3 │   source "a test"
             4 │   import "other.race"
               ·          ──────┬─────
               ·                ╰── imported here
             5 │   const LOCK = "/run/app.lock"
               ╰────
              help: move the shared declarations into a `library NAME { ... }` file (scenarios/lib/) and
                    import that from both scenarios

            Error: 
              × a scenario, not `library NAME { ... }`
               ╭─[s/other.race:1:1]
             1 │ scenario other {
               · ────┬───
               ·     ╰── here
             2 │   proc p() {}
               ╰────
        "#]],
    );
}

#[test]
fn a_library_holds_declarations_only() {
    let lib = "library bad {\n  actor a { sleep 1s }\n  fault f: crash a\n  variant v { expect holds }\n  proc ok() {}\n}\n";
    check_error(
        &scenario(r#"import "lib/bad.race""#),
        &files(&[("s/lib/bad.race", lib)]),
        expect![[r#"
            3 errors in s/guarded.race
              × an actor cannot be declared in a library
               ╭─[s/lib/bad.race:2:9]
             1 │ library bad {
             2 │   actor a { sleep 1s }
               ·         ┬
               ·         ╰── belongs to a scenario
             3 │   fault f: crash a
               ╰────
              help: a library holds constants, procedures, cells, logs, thread-locals, locks, invariants, `fs`
                    entries and imports; the scenario declares its actors, faults, variants and expectations
              × a fault cannot be declared in a library
               ╭─[s/lib/bad.race:3:3]
             2 │   actor a { sleep 1s }
             3 │   fault f: crash a
               ·   ────────┬───────
               ·           ╰── belongs to a scenario
             4 │   variant v { expect holds }
               ╰────
              help: a library holds constants, procedures, cells, logs, thread-locals, locks, invariants, `fs`
                    entries and imports; the scenario declares its actors, faults, variants and expectations
              × a variant cannot be declared in a library
               ╭─[s/lib/bad.race:4:11]
             3 │   fault f: crash a
             4 │   variant v { expect holds }
               ·           ┬
               ·           ╰── belongs to a scenario
             5 │   proc ok() {}
               ╰────
              help: a library holds constants, procedures, cells, logs, thread-locals, locks, invariants, `fs`
                    entries and imports; the scenario declares its actors, faults, variants and expectations
        "#]],
    );
}

#[test]
fn errors_inside_a_library_point_into_the_library() {
    let lib =
        "library broken {\n  proc p() {\n    let = 1\n  }\n  proc q() { undefined_call() }\n}\n";
    check_error(
        &scenario(r#"import "lib/broken.race""#),
        &files(&[("s/lib/broken.race", lib)]),
        expect![[r#"
            1 error in s/guarded.race
              × expected a variable name, found `=`
               ╭─[s/lib/broken.race:3:9]
             2 │   proc p() {
             3 │     let = 1
               ·         ┬
               ·         ╰── expected a variable name
             4 │   }
               ╰────
              help: names start with a letter or `_` and contain letters, digits and `_`
        "#]],
    );
    let bytes = b"library latin {\n  # caf\xe9\n}\n";
    let loader = MemLoader(
        [(
            "s/lib/latin.race".to_string(),
            String::from_utf8_lossy(bytes).into_owned(),
        )]
        .into_iter()
        .collect(),
    );
    // (MemLoader holds text; the non-UTF-8 case goes through the binary below.)
    assert!(compile(&scenario(r#"import "lib/latin.race""#), &loader).is_err());
}

#[test]
fn malformed_import_lines() {
    check_error(
        &scenario(r#"import "lib/locks.race" { }"#),
        &files(&[("s/lib/locks.race", LOCKS)]),
        expect![[r#"
            1 error in s/guarded.race
              × an import lists no names
               ╭─[s/guarded.race:4:3]
             3 │   source "a test"
             4 │   import "lib/locks.race" { }
               ·   ─────────────┬─────────────
               ·                ╰── nothing to import
             5 │   const LOCK = "/run/app.lock"
               ╰────
              help: name what to import, or drop the braces to import every declaration
        "#]],
    );
    check_error(
        &scenario(r#"import lib/locks.race"#),
        &files(&[("s/lib/locks.race", LOCKS)]),
        expect![[r#"
            1 error in s/guarded.race
              × expected the path of the library to import (a string), found `lib`
               ╭─[s/guarded.race:4:10]
             3 │   source "a test"
             4 │   import lib/locks.race
               ·          ─┬─
               ·           ╰── expected a string
             5 │   const LOCK = "/run/app.lock"
               ╰────
              help: strings are written in double quotes
        "#]],
    );
    check_error(
        &scenario(r#"import "lib/locks.race" { lock unlock }"#),
        &files(&[("s/lib/locks.race", LOCKS)]),
        expect![[r#"
            1 error in s/guarded.race
              × expected `,` or `}`, found `unlock`
               ╭─[s/guarded.race:4:34]
             3 │   source "a test"
             4 │   import "lib/locks.race" { lock unlock }
               ·                                  ───┬──
               ·                                     ╰── expected `,` or `}`
             5 │   const LOCK = "/run/app.lock"
               ╰────
              help: list the names to import: `import "lib/x.race" { lock, unlock }`
        "#]],
    );
}

#[test]
fn a_library_is_not_a_scenario() {
    let e = compile_with_loader(
        "lib/locks.race",
        LOCKS,
        &Default::default(),
        &MemLoader::default(),
    )
    .expect_err("a library");
    expect![[r#"
        1 error in lib/locks.race
          × `locks` is a library, not a scenario
           ╭─[lib/locks.race:2:1]
         1 │ # A lock file taken with O_EXCL.
         2 │ library locks {
           · ───┬───
           ·    ╰── a library
         3 │   const NAP = 100ms
           ╰────
          help: a library is imported by scenarios (`import "lib/NAME.race"`); check or explore the
                scenarios that import it
    "#]]
    .assert_eq(&format!("{e}\n{}", render_plain(&e)));
}

use crate::lang_cli::racelab;

#[test]
fn editing_a_library_invalidates_the_tokens_of_the_scenarios_that_import_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("lib")).expect("mkdir");
    std::fs::write(dir.path().join("lib/locks.race"), LOCKS).expect("write");
    std::fs::write(
        dir.path().join("guarded.race"),
        scenario(r#"import "lib/locks.race""#),
    )
    .expect("write");
    let (code, out, err) = racelab(
        dir.path(),
        &[
            "explore",
            "guarded.race",
            "--variant",
            "no-lock",
            "--engine",
            "native-dfs",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let token = out
        .split_whitespace()
        .find(|w| w.starts_with("rl1_"))
        .unwrap_or_else(|| panic!("no token in {out}"))
        .to_string();
    let replay = [
        "replay",
        "guarded.race",
        "--variant",
        "no-lock",
        token.as_str(),
    ];
    let (code, out, err) = racelab(dir.path(), &replay);
    assert_eq!(code, 0, "the token replays: {out}{err}");
    // A comment in the library changes nothing ...
    std::fs::write(
        dir.path().join("lib/locks.race"),
        format!("# edited\n{LOCKS}"),
    )
    .expect("write");
    let (code, out, err) = racelab(dir.path(), &replay);
    assert_eq!(code, 0, "a comment keeps the token: {out}{err}");
    // ... a changed declaration, even one the variant does not run, invalidates the token.
    std::fs::write(
        dir.path().join("lib/locks.race"),
        LOCKS.replace("sleep 1s", "sleep 2s"),
    )
    .expect("write");
    let (code, out, err) = racelab(dir.path(), &replay);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("earlier version"), "{err}");
}

#[test]
fn bad_libraries_through_the_binary_get_exit_2_and_both_positions() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("lib")).expect("mkdir");
    std::fs::write(
        dir.path().join("lib/latin.race"),
        b"library latin {\n  # caf\xe9\n}\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("guarded.race"),
        scenario(r#"import "lib/latin.race""#),
    )
    .expect("write");
    let (code, _, err) = racelab(dir.path(), &["check", "guarded.race"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("lib/latin.race:2:8"), "{err}");
    assert!(err.contains("guarded.race:4:10"), "{err}");
    assert!(err.contains("not UTF-8"), "{err}");
    let (code, _, err) = racelab(dir.path(), &["check", "lib/latin.race"]);
    assert_eq!(code, 2, "{err}");
}
