//! Malformed input, part four: paths, match arms, integers, several errors at once, empty
//! files, calls, conditions and sections produce the expected diagnostics.

use expect_test::expect;
use racelab_core::lang::{compile, render_plain};

use super::{check_err, FILE};

#[test]
fn err_relative_fs_path() {
    check_err(
        "scenario s {\n  fs { dir \"relative\"  file 3 }\n  actor a { }\n}\n",
        expect![[r#"
            2 errors in test.race
              × expected an absolute path, found relative
               ╭─[test.race:2:12]
             1 │ scenario s {
             2 │   fs { dir "relative"  file 3 }
               ·            ─────┬────
               ·                 ╰── not an absolute path
             3 │   actor a { }
               ╰────
              help: paths are strings starting with `/`; they are relative to the scenario's root
              × expected an absolute path, found 3
               ╭─[test.race:2:29]
             1 │ scenario s {
             2 │   fs { dir "relative"  file 3 }
               ·                             ┬
               ·                             ╰── not an absolute path
             3 │   actor a { }
               ╰────
              help: paths are strings starting with `/`; they are relative to the scenario's root
        "#]],
    );
}

#[test]
fn err_missing_arrow_in_match_arm() {
    check_err(
        "scenario s {\n  actor a {\n    match stat(\"/a\") {\n      ok { }\n      err => {}\n    }\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × expected `=>`, found `{`
               ╭─[test.race:4:10]
             3 │     match stat("/a") {
             4 │       ok { }
               ·          ┬
               ·          ╰── expected `=>` here
             5 │       err => {}
               ╰────
              help: each arm is written `PATTERN => { ... }`
        "#]],
    );
}

#[test]
fn err_integer_too_large() {
    check_err(
        "scenario s {\n  const BIG = 99999999999999999999\n  actor a { }\n}\n",
        expect![[r#"
            1 error in test.race
              × integer literal is too large
               ╭─[test.race:2:15]
             1 │ scenario s {
             2 │   const BIG = 99999999999999999999
               ·               ──────────┬─────────
               ·                         ╰── this number
             3 │   actor a { }
               ╰────
              help: integers are 64-bit signed
        "#]],
    );
}

#[test]
fn err_several_errors_reported_at_once() {
    let src = "scenario s {\n  const NAP = 5q\n  actor a {\n    lnk(\"/a\", \"/b\")\n    break\n  }\n  invariant inv: always count(nolog) == 0\n}\n";
    let e = compile(FILE, src).map(|_| ()).unwrap_err();
    assert_eq!(e.diags.len(), 4, "{}", render_plain(&e));
    check_err(
        src,
        expect![[r#"
            4 errors in test.race
              × unknown duration unit `q`
               ╭─[test.race:2:16]
             1 │ scenario s {
             2 │   const NAP = 5q
               ·                ┬
               ·                ╰── unknown unit
             3 │   actor a {
               ╰────
              help: durations are written like `10ms`, `15s`, `2m` or `1h`
              × unknown operation or procedure `lnk`
               ╭─[test.race:4:5]
             3 │   actor a {
             4 │     lnk("/a", "/b")
               ·     ─┬─
               ·      ╰── unknown
             5 │     break
               ╰────
              help: did you mean `link`? operations: create, write, read, link, unlink, rename, stat, utime,
                    touch, mkdir, rmdir, glob, open, flock, fstat, close, len, str, int, contains, min, max,
                    first, push, put, rest, remove
              × `break` outside of a loop
               ╭─[test.race:5:5]
             4 │     lnk("/a", "/b")
             5 │     break
               ·     ──┬──
               ·       ╰── not in a loop
             6 │   }
               ╰────
              help: `break` and `continue` belong inside `loop { ... }` or `while COND { ... }`
              × `count` takes the name of a log
               ╭─[test.race:7:31]
             6 │   }
             7 │   invariant inv: always count(nolog) == 0
               ·                               ──┬──
               ·                                 ╰── not a log
             8 │ }
               ╰────
              help: write `count(log)` or `count(log, "text")` for a `log NAME` declaration
        "#]],
    );
}

#[test]
fn err_errors_in_every_variant_and_syntax_errors_together() {
    // One syntax error does not hide the checks of the rest of the file.
    check_err(
        "scenario s {\n  proc p() { let = 1 }\n  actor a { p()\n    x = 2 }\n  variant one { expect violates nope }\n  variant two { proc q() { } }\n}\n",
        expect![[r#"
            4 errors in test.race
              × expected a variable name, found `=`
               ╭─[test.race:2:18]
             1 │ scenario s {
             2 │   proc p() { let = 1 }
               ·                  ┬
               ·                  ╰── expected a variable name
             3 │   actor a { p()
               ╰────
              help: names start with a letter or `_` and contain letters, digits and `_`
              × assignment to undeclared variable `x`
               ╭─[test.race:4:5]
             3 │   actor a { p()
             4 │     x = 2 }
               ·     ┬
               ·     ╰── not declared
             5 │   variant one { expect violates nope }
               ╰────
              help: declare it first: `let x = ...`
              × unknown invariant `nope`
               ╭─[test.race:5:33]
             4 │     x = 2 }
             5 │   variant one { expect violates nope }
               ·                                 ──┬─
               ·                                   ╰── not an invariant
             6 │   variant two { proc q() { } }
               ╰────
              help: invariants here: unhandled_error, assertion, deadlock, livelock, lock_order
              × variant `two` replaces procedure `q`, which the scenario does not declare
               ╭─[test.race:6:22]
             5 │   variant one { expect violates nope }
             6 │   variant two { proc q() { } }
               ·                      ┬
               ·                      ╰── nothing to replace
             7 │ }
               ╰────
              help: declare `q` at the top level; a variant only replaces constants and procedures
        "#]],
    );
}

#[test]
fn err_empty_file() {
    check_err(
        "",
        expect![[r#"
            2 errors in test.race
              × expected `scenario`, found end of file
               ╭─[test.race:1:1]
               ╰────
              help: a scenario file is `scenario NAME { ... }` (a library is `library NAME { ... }`)
              × the scenario has no actors
               ╭─[test.race:1:1]
               ╰────
              help: declare at least one actor: `actor worker x 2 { ... }`
        "#]],
    );
}

#[test]
fn err_actor_without_body() {
    check_err(
        "scenario s {\n  actor a x 3\n}\n",
        expect![[r#"
        2 errors in test.race
          × the scenario has no actors
           ╭─[test.race:1:1]
         1 │ scenario s {
           · ▲
           · ╰── nothing would run
         2 │   actor a x 3
           ╰────
          help: declare at least one actor: `actor worker x 2 { ... }`
          × expected `{`, found `}`
           ╭─[test.race:3:1]
         2 │   actor a x 3
         3 │ }
           · ┬
           · ╰── expected `{` here
           ╰────
          help: a block is written in braces
    "#]],
    );
}

#[test]
fn err_create_with_three_arguments() {
    check_err(
        "scenario s {\n  actor a {\n    create(\"/a\", excl, 1)\n  }\n}\n",
        expect![[r#"
        1 error in test.race
          × `create` takes 1 argument, not 3
           ╭─[test.race:3:5]
         2 │   actor a {
         3 │     create("/a", excl, 1)
           ·     ──────────┬──────────
           ·               ╰── wrong number of arguments
         4 │   }
           ╰────
          help: write `create(path) or create(path, excl)`
    "#]],
    );
}

#[test]
fn err_query_in_constant() {
    check_err(
        "scenario s {\n  const X = holders(sec)\n  actor a { critical sec { } }\n}\n",
        expect![[r#"
        1 error in test.race
          × not a constant value: not a constant
           ╭─[test.race:2:13]
         1 │ scenario s {
         2 │   const X = holders(sec)
           ·             ──────┬─────
           ·                   ╰── must be known before the run
         3 │   actor a { critical sec { } }
           ╰────
          help: constants and initial values may use literals, other constants and arithmetic
    "#]],
    );
}

#[test]
fn err_assignment_in_condition() {
    check_err(
        "scenario s {\n  actor a {\n    let x = 1\n    if x = 1 { }\n  }\n}\n",
        expect![[r#"
        1 error in test.race
          × expected `{`, found `=`
           ╭─[test.race:4:10]
         3 │     let x = 1
         4 │     if x = 1 { }
           ·          ┬
           ·          ╰── expected `{` here
         5 │   }
           ╰────
          help: a block is written in braces
    "#]],
    );
}

#[test]
fn err_sleep_without_duration() {
    check_err(
        "scenario s {\n  actor a {\n    sleep\n  }\n}\n",
        expect![[r#"
        1 error in test.race
          × expected an expression, found `}`
           ╭─[test.race:4:3]
         3 │     sleep
         4 │   }
           ·   ┬
           ·   ╰── expected an expression
         5 │ }
           ╰────
          help: an expression is a value, a name, a call like `stat(path)`, or an operation on those
    "#]],
    );
}

#[test]
fn err_unclosed_call_parenthesis() {
    check_err(
        "scenario s {\n  actor a {\n    stat(\"/a\"\n    sleep 1s\n  }\n}\n",
        expect![[r#"
        1 error in test.race
          × expected `,`, found `sleep`
           ╭─[test.race:4:5]
         3 │     stat("/a"
         4 │     sleep 1s
           ·     ──┬──
           ·       ╰── expected `,` here
         5 │   }
           ╰────
          help: separate arguments with commas
    "#]],
    );
}

#[test]
fn err_holders_of_unknown_section() {
    check_err(
        "scenario s {\n  actor a { critical list { } }\n  invariant one: always holders(lsit) <= 1\n}\n",
        expect![[r#"
            1 error in test.race
              × no critical section is named `lsit`
               ╭─[test.race:3:33]
             2 │   actor a { critical list { } }
             3 │   invariant one: always holders(lsit) <= 1
               ·                                 ──┬─
               ·                                   ╰── unknown section
             4 │ }
               ╰────
              help: did you mean `list`?
        "#]],
    );
}
