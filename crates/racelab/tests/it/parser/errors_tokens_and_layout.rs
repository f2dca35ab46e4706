//! Malformed input, part three: keywords, characters, escapes, file layout, actor counts,
//! interpolation, declarations and constants produce the expected diagnostics.

use expect_test::expect;

use super::check_err;

#[test]
fn err_keyword_as_name() {
    check_err(
        "scenario s {\n  actor a {\n    let if = 1\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × `if` is a keyword and cannot be used as a variable name
               ╭─[test.race:3:9]
             2 │   actor a {
             3 │     let if = 1
               ·         ─┬
               ·          ╰── keyword
             4 │   }
               ╰────
              help: pick another name
        "#]],
    );
}

#[test]
fn err_keyword_in_expression() {
    check_err(
        "scenario s {\n  actor a {\n    let x = loop\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × expected an expression, found keyword `loop`
               ╭─[test.race:3:13]
             2 │   actor a {
             3 │     let x = loop
               ·             ──┬─
               ·               ╰── expected an expression
             4 │   }
               ╰────
              help: statements such as `let` or `if` start a line of their own
        "#]],
    );
}

#[test]
fn err_unexpected_character() {
    check_err(
        "scenario s {\n  actor a {\n    let x = 1 @ 2\n  }\n}\n",
        expect![[r#"
            2 errors in test.race
              × unexpected character `@`
               ╭─[test.race:3:15]
             2 │   actor a {
             3 │     let x = 1 @ 2
               ·               ┬
               ·               ╰── not part of the language
             4 │   }
               ╰────
              help: comments start with `#`; strings are written in double quotes
              × this expression does nothing
               ╭─[test.race:3:17]
             2 │   actor a {
             3 │     let x = 1 @ 2
               ·                 ┬
               ·                 ╰── value is computed and dropped
             4 │   }
               ╰────
              help: a statement is a call, an operation, or a `let`/`set`; bind the value with `let` to use it
        "#]],
    );
}

#[test]
fn err_unknown_escape_in_string() {
    check_err(
        "scenario s {\n  const S = \"a\\qb\"\n  actor a { }\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown escape `\q`
               ╭─[test.race:2:15]
             1 │ scenario s {
             2 │   const S = "a\qb"
               ·               ─┬
               ·                ╰── unknown escape
             3 │   actor a { }
               ╰────
              help: strings know `\n`, `\t`, `\"` and `\\`; write `{{` and `}}` for literal braces
        "#]],
    );
}

#[test]
fn err_text_after_the_scenario() {
    check_err(
        "scenario s {\n  actor a { }\n}\nactor b { }\n",
        expect![[r#"
            1 error in test.race
              × text after the end of the scenario
               ╭─[test.race:4:1]
             3 │ }
             4 │ actor b { }
               · ──┬──
               ·   ╰── unexpected
               ╰────
              help: a file holds exactly one `scenario { ... }`
        "#]],
    );
}

#[test]
fn err_file_does_not_start_with_scenario() {
    check_err(
        "senario s {\n  actor a { }\n}\n",
        expect![[r#"
            2 errors in test.race
              × the scenario has no actors
               ╭─[test.race:1:1]
             1 │ senario s {
               · ▲
               · ╰── nothing would run
             2 │   actor a { }
               ╰────
              help: declare at least one actor: `actor worker x 2 { ... }`
              × expected `scenario`, found `senario`
               ╭─[test.race:1:1]
             1 │ senario s {
               · ───┬───
               ·    ╰── a scenario file starts here
             2 │   actor a { }
               ╰────
              help: a scenario file is `scenario NAME { ... }` (a library is `library NAME { ... }`)
        "#]],
    );
}

#[test]
fn err_missing_always_or_at_end() {
    check_err(
        "scenario s {\n  actor a { }\n  invariant inv: holders(sec) <= 1\n}\n",
        expect![[r#"
            1 error in test.race
              × expected `always` or `at end`
               ╭─[test.race:3:18]
             2 │   actor a { }
             3 │   invariant inv: holders(sec) <= 1
               ·                  ───┬───
               ·                     ╰── say when the invariant is checked
             4 │ }
               ╰────
              help: `always` checks after every step; `at end` checks once when all actors have finished
        "#]],
    );
}

#[test]
fn err_actor_count_zero() {
    check_err(
        "scenario s {\n  actor a x 0 { }\n}\n",
        expect![[r#"
            1 error in test.race
              × an actor count must be between 1 and 64, not 0
               ╭─[test.race:2:13]
             1 │ scenario s {
             2 │   actor a x 0 { }
               ·             ┬
               ·             ╰── out of range
             3 │ }
               ╰────
              help: explore with a few actors: races need two or three, not hundreds
        "#]],
    );
}

#[test]
fn err_actor_count_not_a_number() {
    check_err(
        "scenario s {\n  actor a x many { }\n}\n",
        expect![[r#"
            2 errors in test.race
              × the scenario has no actors
               ╭─[test.race:1:1]
             1 │ scenario s {
               · ▲
               · ╰── nothing would run
             2 │   actor a x many { }
               ╰────
              help: declare at least one actor: `actor worker x 2 { ... }`
              × expected a count, found `many`
               ╭─[test.race:2:13]
             1 │ scenario s {
             2 │   actor a x many { }
               ·             ──┬─
               ·               ╰── expected a number
             3 │ }
               ╰────
              help: write `actor NAME x 3 { ... }`
        "#]],
    );
}

#[test]
fn err_no_actors() {
    check_err(
        "scenario s {\n  const A = 1\n}\n",
        expect![[r#"
            1 error in test.race
              × the scenario has no actors
               ╭─[test.race:1:1]
             1 │ scenario s {
               · ▲
               · ╰── nothing would run
             2 │   const A = 1
               ╰────
              help: declare at least one actor: `actor worker x 2 { ... }`
        "#]],
    );
}

#[test]
fn err_empty_interpolation() {
    check_err(
        "scenario s {\n  actor a {\n    fail \"value: {}\"\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × empty interpolation `{}`
               ╭─[test.race:3:18]
             2 │   actor a {
             3 │     fail "value: {}"
               ·                  ─┬
               ·                   ╰── nothing inside
             4 │   }
               ╰────
              help: put an expression inside, or write `{{}}` for literal braces
        "#]],
    );
}

#[test]
fn err_unclosed_interpolation() {
    check_err(
        "scenario s {\n  actor a {\n    fail \"value: {self\"\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × unclosed `{` in string
               ╭─[test.race:3:18]
             2 │   actor a {
             3 │     fail "value: {self"
               ·                  ┬
               ·                  ╰── interpolation starts here
             4 │   }
               ╰────
              help: close it with `}`, or write `{{` for a literal brace
        "#]],
    );
}

#[test]
fn err_unknown_declaration() {
    check_err(
        "scenario s {\n  actr a { }\n  actor b { }\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown declaration `actr`
               ╭─[test.race:2:3]
             1 │ scenario s {
             2 │   actr a { }
               ·   ──┬─
               ·     ╰── not a declaration
             3 │   actor b { }
               ╰────
              help: expected one of: import, about, source, const, param, fs, nfs, cell, local, log, lock,
                    rlock, rwlock, database, gate, proc, actor, invariant, fault, faults, variant, expect
        "#]],
    );
}

#[test]
fn err_unknown_stat_field() {
    check_err(
        "scenario s {\n  actor a {\n    match stat(\"/a\") {\n      ok(st) => { let n = st.links }\n      err => {}\n    }\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown field `links`
               ╭─[test.race:4:30]
             3 │     match stat("/a") {
             4 │       ok(st) => { let n = st.links }
               ·                              ──┬──
               ·                                ╰── no such field
             5 │       err => {}
               ╰────
              help: stat results have `nlink`, `mtime`, `size` and `ino`
        "#]],
    );
}

#[test]
fn err_expression_statement_does_nothing() {
    check_err(
        "scenario s {\n  actor a {\n    1 + 2\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × this expression does nothing
               ╭─[test.race:3:5]
             2 │   actor a {
             3 │     1 + 2
               ·     ──┬──
               ·       ╰── value is computed and dropped
             4 │   }
               ╰────
              help: a statement is a call, an operation, or a `let`/`set`; bind the value with `let` to use it
        "#]],
    );
}

#[test]
fn err_non_constant_const() {
    check_err(
        "scenario s {\n  const T = stat(\"/a\")\n  actor a { }\n}\n",
        expect![[r#"
            1 error in test.race
              × `stat` with 1 argument cannot be used here
               ╭─[test.race:2:13]
             1 │ scenario s {
             2 │   const T = stat("/a")
               ·             ─────┬────
               ·                  ╰── not allowed in an invariant or constant
             3 │   actor a { }
               ╰────
              help: invariants may use holders(section), count(log), count(log, text), count(local, value),
                    exists(path), read(path), sql(...), connections(database), len, str, int, contains, min,
                    max, push, put, rest, remove
        "#]],
    );
}
