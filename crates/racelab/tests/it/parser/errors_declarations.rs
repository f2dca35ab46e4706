//! Malformed input, part two: misplaced break/continue, expectations, variants, duplicate
//! declarations and invariants produce the expected diagnostics.

use expect_test::expect;

use super::check_err;

#[test]
fn err_break_outside_loop() {
    check_err(
        "scenario s {\n  actor a {\n    break\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × `break` outside of a loop
               ╭─[test.race:3:5]
             2 │   actor a {
             3 │     break
               ·     ──┬──
               ·       ╰── not in a loop
             4 │   }
               ╰────
              help: `break` and `continue` belong inside `loop { ... }` or `while COND { ... }`
        "#]],
    );
}

#[test]
fn err_continue_outside_loop() {
    check_err(
        "scenario s {\n  proc p() {\n    if true { continue }\n  }\n  actor a { p() }\n}\n",
        expect![[r#"
            1 error in test.race
              × `continue` outside of a loop
               ╭─[test.race:3:15]
             2 │   proc p() {
             3 │     if true { continue }
               ·               ────┬───
               ·                   ╰── not in a loop
             4 │   }
               ╰────
              help: `break` and `continue` belong inside `loop { ... }` or `while COND { ... }`
        "#]],
    );
}

#[test]
fn err_unknown_invariant_in_expect() {
    check_err(
        "scenario s {\n  invariant safe: always true\n  actor a { }\n  expect violates sfae\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown invariant `sfae`
               ╭─[test.race:4:19]
             3 │   actor a { }
             4 │   expect violates sfae
               ·                   ──┬─
               ·                     ╰── not an invariant
             5 │ }
               ╰────
              help: invariants here: safe, unhandled_error, assertion, deadlock, livelock, lock_order
        "#]],
    );
}

#[test]
fn err_unknown_expectation_kind() {
    check_err(
        "scenario s {\n  actor a { }\n  expect fails\n}\n",
        expect![[r#"
            1 error in test.race
              × expected `violates`, `deadlock` or `holds`, found `fails`
               ╭─[test.race:3:10]
             2 │   actor a { }
             3 │   expect fails
               ·          ──┬──
               ·            ╰── unknown expectation
             4 │ }
               ╰────
              help: write `expect violates INVARIANT`, `expect deadlock` or `expect holds`
        "#]],
    );
}

#[test]
fn err_conflicting_expectations() {
    check_err(
        "scenario s {\n  actor a { }\n  variant v {\n    expect holds\n    expect deadlock\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × variant `v` has conflicting expectations
               ╭─[test.race:5:5]
             4 │     expect holds
             5 │     expect deadlock
               ·     ───────┬───────
               ·            ╰── second expectation
             6 │   }
               ╰────
              help: a variant either holds, deadlocks, or violates one or more invariants
        "#]],
    );
}

#[test]
fn err_variant_replaces_undeclared_proc() {
    check_err(
        "scenario s {\n  actor a { }\n  variant v {\n    proc nothere() { }\n    expect holds\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × variant `v` replaces procedure `nothere`, which the scenario does not declare
               ╭─[test.race:4:10]
             3 │   variant v {
             4 │     proc nothere() { }
               ·          ───┬───
               ·             ╰── nothing to replace
             5 │     expect holds
               ╰────
              help: declare `nothere` at the top level; a variant only replaces constants and procedures
        "#]],
    );
}

#[test]
fn err_variant_replaces_undeclared_const() {
    check_err(
        "scenario s {\n  actor a { }\n  variant v {\n    const NOPE = 1\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × variant `v` replaces constant `NOPE`, which the scenario does not declare
               ╭─[test.race:4:11]
             3 │   variant v {
             4 │     const NOPE = 1
               ·           ──┬─
               ·             ╰── nothing to replace
             5 │   }
               ╰────
              help: declare `NOPE` at the top level; a variant only replaces constants and procedures
        "#]],
    );
}

#[test]
fn err_variant_proc_with_different_params() {
    check_err(
        "scenario s {\n  proc p(a) { }\n  actor a { p(1) }\n  variant v {\n    proc p(a, b) { }\n  }\n}\n",
        expect![[r#"
            2 errors in test.race
              × procedure `p` takes 2 arguments, not 1
               ╭─[test.race:3:13]
             2 │   proc p(a) { }
             3 │   actor a { p(1) }
               ·             ──┬─
               ·               ╰── wrong number of arguments
             4 │   variant v {
               ╰────
              help: match the procedure's parameters
              × `p` takes 2 parameters here but 1 in the scenario
               ╭─[test.race:5:10]
             4 │   variant v {
             5 │     proc p(a, b) { }
               ·          ┬
               ·          ╰── different parameters
             6 │   }
               ╰────
              help: a variant's procedure replaces the original and must take the same parameters
        "#]],
    );
}

#[test]
fn err_variant_declares_actor() {
    check_err(
        "scenario s {\n  actor a { }\n  variant v {\n    actor b { }\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown declaration `actor`
               ╭─[test.race:4:5]
             3 │   variant v {
             4 │     actor b { }
               ·     ──┬──
               ·       ╰── not allowed in a variant
             5 │   }
               ╰────
              help: expected one of: const, proc, fault, faults, nfs, expect
        "#]],
    );
}

#[test]
fn err_duplicate_variant() {
    check_err(
        "scenario s {\n  actor a { }\n  variant v { }\n  variant v { }\n}\n",
        expect![[r#"
            1 error in test.race
              × variant `v` is declared twice
               ╭─[test.race:4:11]
             3 │   variant v { }
             4 │   variant v { }
               ·           ┬
               ·           ╰── declared again here
             5 │ }
               ╰────
              help: variant names must be unique
        "#]],
    );
}

#[test]
fn err_duplicate_proc() {
    check_err(
        "scenario s {\n  proc p() { }\n  proc p() { }\n  actor a { p() }\n}\n",
        expect![[r#"
            1 error in test.race
              × procedure `p` is declared twice
               ╭─[test.race:3:8]
             2 │   proc p() { }
             3 │   proc p() { }
               ·        ┬
               ·        ╰── declared again here
             4 │   actor a { p() }
               ╰────
              help: rename one of the two; names of procedures must be unique
        "#]],
    );
}

#[test]
fn err_duplicate_invariant() {
    check_err(
        "scenario s {\n  invariant inv: always true\n  invariant inv: at end true\n  actor a { }\n}\n",
        expect![[r#"
            1 error in test.race
              × invariant `inv` is declared twice
               ╭─[test.race:3:13]
             2 │   invariant inv: always true
             3 │   invariant inv: at end true
               ·             ─┬─
               ·              ╰── declared again here
             4 │   actor a { }
               ╰────
              help: rename one of the two; names of invariants must be unique
        "#]],
    );
}

#[test]
fn err_invariant_named_like_builtin_oracle() {
    check_err(
        "scenario s {\n  invariant deadlock: always true\n  actor a { }\n}\n",
        expect![[r#"
            1 error in test.race
              × invariant `deadlock` is declared twice
               ╭─[test.race:2:13]
             1 │ scenario s {
             2 │   invariant deadlock: always true
               ·             ────┬───
               ·                 ╰── declared again here
             3 │   actor a { }
               ╰────
              help: rename one of the two; names of invariants must be unique
        "#]],
    );
}

#[test]
fn err_duplicate_const_cell_log_actor() {
    check_err(
        "scenario s {\n  const C = 1\n  const C = 2\n  cell c = 0\n  cell c = 1\n  log l\n  log l\n  actor a { }\n  actor a { }\n}\n",
        expect![[r#"
            4 errors in test.race
              × constant `C` is declared twice
               ╭─[test.race:3:9]
             2 │   const C = 1
             3 │   const C = 2
               ·         ┬
               ·         ╰── declared again here
             4 │   cell c = 0
               ╰────
              help: rename one of the two; names of constants must be unique
              × cell `c` is declared twice
               ╭─[test.race:5:8]
             4 │   cell c = 0
             5 │   cell c = 1
               ·        ┬
               ·        ╰── declared again here
             6 │   log l
               ╰────
              help: rename one of the two; names of cells must be unique
              × log `l` is declared twice
               ╭─[test.race:7:7]
             6 │   log l
             7 │   log l
               ·       ┬
               ·       ╰── declared again here
             8 │   actor a { }
               ╰────
              help: rename one of the two; names of logs must be unique
              × actor `a` is declared twice
                ╭─[test.race:9:9]
              8 │   actor a { }
              9 │   actor a { }
                ·         ┬
                ·         ╰── declared again here
             10 │ }
                ╰────
              help: rename one of the two; names of actors must be unique
        "#]],
    );
}

#[test]
fn err_about_given_twice() {
    check_err(
        "scenario s {\n  about \"one\"\n  about \"two\"\n  actor a { }\n}\n",
        expect![[r#"
            1 error in test.race
              × `about` is given twice
               ╭─[test.race:3:9]
             2 │   about "one"
             3 │   about "two"
               ·         ──┬──
               ·           ╰── second `about`
             4 │   actor a { }
               ╰────
              help: keep one description
        "#]],
    );
}

#[test]
fn err_expectation_outside_variant_when_variants_exist() {
    check_err(
        "scenario s {\n  actor a { }\n  expect holds\n  variant v { expect holds }\n}\n",
        expect![[r#"
            1 error in test.race
              × expectation outside of a variant
               ╭─[test.race:3:3]
             2 │   actor a { }
             3 │   expect holds
               ·   ──────┬─────
               ·         ╰── belongs to a variant
             4 │   variant v { expect holds }
               ╰────
              help: this scenario has variants: write each `expect` inside its `variant NAME { ... }`
        "#]],
    );
}

#[test]
fn err_holders_of_non_name() {
    check_err(
        "scenario s {\n  actor a { critical sec { } }\n  invariant one: always holders(\"sec\") <= 1\n}\n",
        expect![[r#"
            1 error in test.race
              × `holders` takes the name of a critical section
               ╭─[test.race:3:33]
             2 │   actor a { critical sec { } }
             3 │   invariant one: always holders("sec") <= 1
               ·                                 ──┬──
               ·                                   ╰── expected a section name
             4 │ }
               ╰────
              help: write `holders(section)` for `critical section { ... }`
        "#]],
    );
}

#[test]
fn err_count_of_unknown_log() {
    check_err(
        "scenario s {\n  actor a { }\n  invariant quiet: always count(nolog) == 0\n}\n",
        expect![[r#"
            1 error in test.race
              × `count` takes the name of a log
               ╭─[test.race:3:33]
             2 │   actor a { }
             3 │   invariant quiet: always count(nolog) == 0
               ·                                 ──┬──
               ·                                   ╰── not a log
             4 │ }
               ╰────
              help: write `count(log)` or `count(log, "text")` for a `log NAME` declaration
        "#]],
    );
}

#[test]
fn err_operation_in_invariant() {
    check_err(
        "scenario s {\n  actor a { }\n  invariant bad: always stat(\"/x\") == none\n}\n",
        expect![[r#"
            1 error in test.race
              × `stat` with 1 argument cannot be used here
               ╭─[test.race:3:25]
             2 │   actor a { }
             3 │   invariant bad: always stat("/x") == none
               ·                         ─────┬────
               ·                              ╰── not allowed in an invariant or constant
             4 │ }
               ╰────
              help: invariants may use holders(section), count(log), count(log, text), count(local, value),
                    exists(path), read(path), sql(...), connections(database), len, str, int, contains, min,
                    max, push, put, rest, remove
        "#]],
    );
}

#[test]
fn err_unknown_name_in_invariant() {
    check_err(
        "scenario s {\n  const LIMIT = 1\n  actor a { }\n  invariant bad: always LIMTI > 0\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown name `LIMTI`
               ╭─[test.race:4:25]
             3 │   actor a { }
             4 │   invariant bad: always LIMTI > 0
               ·                         ──┬──
               ·                           ╰── not a constant or cell
             5 │ }
               ╰────
              help: did you mean `LIMIT`?
        "#]],
    );
}

#[test]
fn err_query_used_in_actor_body() {
    check_err(
        "scenario s {\n  actor a {\n    critical sec {\n      let h = holders(sec)\n    }\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × `holders` can only be used in invariants
               ╭─[test.race:4:15]
             3 │     critical sec {
             4 │       let h = holders(sec)
               ·               ───┬───
               ·                  ╰── not a step
             5 │     }
               ╰────
              help: invariants observe the world without taking a step; inside actors use operations such as
                    `stat(path)`
        "#]],
    );
}

#[test]
fn err_ok_pattern_on_non_operation() {
    check_err(
        "scenario s {\n  actor a {\n    let x = 1\n    match x {\n      ok => {}\n      err => {}\n    }\n  }\n}\n",
        expect![[r#"
            2 errors in test.race
              × `ok` matches the result of an operation
               ╭─[test.race:5:7]
             4 │     match x {
             5 │       ok => {}
               ·       ────┬───
               ·           ╰── not an operation result
             6 │       err => {}
               ╰────
              help: match `ok(x)`/`err(ENOENT)` on calls like `stat(path)`; match plain values with literals
              × `err` matches the result of an operation
               ╭─[test.race:6:7]
             5 │       ok => {}
             6 │       err => {}
               ·       ────┬────
               ·           ╰── not an operation result
             7 │     }
               ╰────
              help: match `ok(x)`/`err(ENOENT)` on calls like `stat(path)`
        "#]],
    );
}
