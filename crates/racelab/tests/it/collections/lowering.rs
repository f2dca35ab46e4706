//! Lists, maps, indexing, `for` and fallbacks: how well-formed uses lower, and the diagnostics
//! of malformed ones.

use expect_test::expect;

use crate::parser::{check_err, check_ok, in_actor};

// ============================================================================ well-formed input

#[test]
fn literals_indexing_and_entry_assignment_are_pure_and_set_item_is_one_step() {
    check_ok(
        r#"scenario t {
  cell alive = map {}
  const PIDS = [10, 20]
  actor a {
    let q = [1, 2, PIDS[1]]
    let m = map { "a": 1, "b": q }
    q[0] = len(m) + m["b"][2]
    m["c"] = 2 in q
    set alive[self] = q
  }
  invariant seen: at end len(alive) <= 1 and not ("b" in alive)
}"#,
        expect![[r#"
            scenario t
            variant default expect=none
              actors: a->a
              cells: alive=Map({})
              invariant seen: at end len(alive) <= 1 and not ("b" in alive)
              proc a/0 regs=2 [6]: eval eval eval eval set-item ret
        "#]],
    );
}

#[test]
fn for_lowers_to_a_counted_loop_over_a_snapshot() {
    check_ok(
        &in_actor("    for x in [1, 2] {\n      if x == 1 { continue }\n      set c = x\n    }"),
        expect![[r#"
            scenario t
            variant default expect=none
              actors: a->a
              cells: c=Int(0)
              logs: l
              proc id/1 regs=1 [2]: ret= ret
              proc a/0 regs=3 [10]: eval eval eval jn9 eval jn7 j2 set:c j2 ret
        "#]],
    );
}

#[test]
fn a_fallback_is_the_operation_caught_and_a_jump() {
    check_ok(
        &in_actor("    let s = read(P) or \"\"\n    let t = read(P) or read(\"/g\") or \"none\""),
        expect![[r#"
            scenario t
            variant default expect=none
              actors: a->a
              cells: c=Int(0)
              logs: l
              proc id/1 regs=1 [2]: ret= ret
              proc a/0 regs=5 [12]: read? jn3 eval eval read? jn10 read? eval jn10 eval eval ret
        "#]],
    );
}

// ============================================================================ malformed input

#[test]
fn err_list_literal_not_closed() {
    check_err(
        &in_actor("    let q = [1, 2\n    let r = [1,, 2]\n    let s = [1 2]\n    let t = id([1)"),
        expect![[r#"
            5 errors in test.race
              × a list's elements are never closed
               ╭─[test.race:7:13]
             6 │   actor a {
             7 │     let q = [1, 2
               ·             ┬
               ·             ╰── no `]` closes this
             8 │     let r = [1,, 2]
               ╰────
              help: close them with `]` before `let`
              × expected an expression, found `,`
               ╭─[test.race:8:16]
             7 │     let q = [1, 2
             8 │     let r = [1,, 2]
               ·                ┬
               ·                ╰── expected an expression
             9 │     let s = [1 2]
               ╰────
              help: an expression is a value, a name, a call like `stat(path)`, or an operation on those
              × expected `,` or `]`, found number `2`
                ╭─[test.race:9:16]
              8 │     let r = [1,, 2]
              9 │     let s = [1 2]
                ·                ┬
                ·                ╰── expected `,` or `]` here
             10 │     let t = id([1)
                ╰────
              help: separate a list's elements with commas, and close them with `]`
              × a list's elements are never closed
                ╭─[test.race:10:16]
              9 │     let s = [1 2]
             10 │     let t = id([1)
                ·                ┬
                ·                ╰── no `]` closes this
             11 │   }
                ╰────
              help: close them with `]` before `)`
              × expected an expression, found `)`
                ╭─[test.race:10:18]
              9 │     let s = [1 2]
             10 │     let t = id([1)
                ·                  ┬
                ·                  ╰── expected an expression
             11 │   }
                ╰────
              help: an expression is a value, a name, a call like `stat(path)`, or an operation on those
        "#]],
    );
}

#[test]
fn err_map_literal_malformed() {
    check_err(
        &in_actor("    let m = map { \"a\" 1 }\n    let n = map [1]\n    let o = map { \"a\": }"),
        expect![[r#"
            3 errors in test.race
              × expected `:`, found number `1`
               ╭─[test.race:7:23]
             6 │   actor a {
             7 │     let m = map { "a" 1 }
               ·                       ┬
               ·                       ╰── expected `:` here
             8 │     let n = map [1]
               ╰────
              help: a map's entries are written `key: value`
              × expected `{`, found `[`
               ╭─[test.race:8:17]
             7 │     let m = map { "a" 1 }
             8 │     let n = map [1]
               ·                 ┬
               ·                 ╰── expected `{` here
             9 │     let o = map { "a": }
               ╰────
              help: a map is written `map { key: value, ... }`; `map {}` is the empty map
              × expected an expression, found `}`
                ╭─[test.race:9:24]
              8 │     let n = map [1]
              9 │     let o = map { "a": }
                ·                        ┬
                ·                        ╰── expected an expression
             10 │   }
                ╰────
              help: an expression is a value, a name, a call like `stat(path)`, or an operation on those
        "#]],
    );
}

#[test]
fn err_index_empty_or_not_closed() {
    check_err(
        &in_actor("    let q = [1]\n    let x = q[]\n    let y = q[0"),
        expect![[r#"
            2 errors in test.race
              × empty index `[]`
               ╭─[test.race:8:14]
             7 │     let q = [1]
             8 │     let x = q[]
               ·              ─┬
               ·               ╰── expected an index or a key
             9 │     let y = q[0
               ╰────
              help: write `list[0]` or `table[pid]`
              × expected `]`, found `}`
                ╭─[test.race:10:3]
              9 │     let y = q[0
             10 │   }
                ·   ┬
                ·   ╰── expected `]` here
             11 │ }
                ╰────
              help: close the index with `]`: `list[i]`, `table[key]`
        "#]],
    );
}

#[test]
fn err_for_without_in_or_variable() {
    check_err(
        &in_actor("    for x [1] { }\n    for in [1] { }\n    for x in [1] set c = x"),
        expect![[r#"
            3 errors in test.race
              × expected `in`, found `[`
               ╭─[test.race:7:11]
             6 │   actor a {
             7 │     for x [1] { }
               ·           ┬
               ·           ╰── expected `in`
             8 │     for in [1] { }
               ╰────
              help: write `for x in list { ... }` or `for key in map { ... }`
              × `in` is a keyword and cannot be used as a loop variable
               ╭─[test.race:8:9]
             7 │     for x [1] { }
             8 │     for in [1] { }
               ·         ─┬
               ·          ╰── keyword
             9 │     for x in [1] set c = x
               ╰────
              help: pick another name
              × expected `{`, found `set`
                ╭─[test.race:9:18]
              8 │     for in [1] { }
              9 │     for x in [1] set c = x
                ·                  ─┬─
                ·                   ╰── expected `{` here
             10 │   }
                ╰────
              help: a block is written in braces
        "#]],
    );
}

#[test]
fn err_entry_assignment_to_something_that_is_not_a_variable() {
    check_err(
        &in_actor("    let t = map {}\n    id(t)[0] = 1\n    t[1][2] = 3\n    t + 1 = 2"),
        expect![[r#"
            3 errors in test.race
              × only an entry of a variable can be assigned
               ╭─[test.race:8:5]
             7 │     let t = map {}
             8 │     id(t)[0] = 1
               ·     ──┬──
               ·       ╰── not a variable
             9 │     t[1][2] = 3
               ╰────
              help: bind the value first: `let t = ...` then `t[key] = value`
              × only one level of a variable's entries can be assigned
                ╭─[test.race:9:5]
              8 │     id(t)[0] = 1
              9 │     t[1][2] = 3
                ·     ──┬─
                ·       ╰── not a variable
             10 │     t + 1 = 2
                ╰────
              help: take the inner value out, change it, and put it back: `let row = t[a]` `row[b] = v` `t[a]
                    = row`
              × only a variable or one entry of it can be assigned
                ╭─[test.race:10:5]
              9 │     t[1][2] = 3
             10 │     t + 1 = 2
                ·     ───┬───
                ·        ╰── not assignable
             11 │   }
                ╰────
              help: write `name = value` or `name[key] = value`
        "#]],
    );
}

#[test]
fn err_entry_assignment_names_cells_and_undeclared_variables() {
    check_err(
        &in_actor("    c[0] = 1\n    nope[0] = 1\n    set nada[0] = 1\n    set c[0 = 1"),
        expect![[r#"
            4 errors in test.race
              × `c` is a shared cell
               ╭─[test.race:7:5]
             6 │   actor a {
             7 │     c[0] = 1
               ·     ┬
               ·     ╰── a cell
             8 │     nope[0] = 1
               ╰────
              help: write an entry of a cell with `set c[key] = ...`; that is one step
              × assignment to undeclared variable `nope`
               ╭─[test.race:8:5]
             7 │     c[0] = 1
             8 │     nope[0] = 1
               ·     ──┬─
               ·       ╰── not declared
             9 │     set nada[0] = 1
               ╰────
              help: declare it first: `let nope = map {}` or `let nope = []`
              × unknown cell `nada`
                ╭─[test.race:9:9]
              8 │     nope[0] = 1
              9 │     set nada[0] = 1
                ·         ──┬─
                ·           ╰── not a cell
             10 │     set c[0 = 1
                ╰────
              help: declare it at the top level: `cell NAME = map {}`; a variable's entry is set with
                    `NAME[key] = value`
              × expected `]`, found `=`
                ╭─[test.race:10:13]
              9 │     set nada[0] = 1
             10 │     set c[0 = 1
                ·             ┬
                ·             ╰── expected `]` here
             11 │   }
                ╰────
              help: close the index with `]`: `list[i]`, `table[key]`
        "#]],
    );
}

#[test]
fn err_new_keywords_are_not_names() {
    check_err(
        &in_actor("    let map = 1\n    let in = 2\n    let for = 3"),
        expect![[r#"
            3 errors in test.race
              × `map` is a keyword and cannot be used as a variable name
               ╭─[test.race:7:9]
             6 │   actor a {
             7 │     let map = 1
               ·         ─┬─
               ·          ╰── keyword
             8 │     let in = 2
               ╰────
              help: pick another name
              × `in` is a keyword and cannot be used as a variable name
               ╭─[test.race:8:9]
             7 │     let map = 1
             8 │     let in = 2
               ·         ─┬
               ·          ╰── keyword
             9 │     let for = 3
               ╰────
              help: pick another name
              × `for` is a keyword and cannot be used as a variable name
                ╭─[test.race:9:9]
              8 │     let in = 2
              9 │     let for = 3
                ·         ─┬─
                ·          ╰── keyword
             10 │   }
                ╰────
              help: pick another name
        "#]],
    );
}

#[test]
fn err_in_and_not_in_and_or_malformed() {
    check_err(
        &in_actor("    let b = 1 not 2\n    let c = 1 in\n    let d = read(P) or\n    let e = 1"),
        expect![[r#"
            3 errors in test.race
              × `not` after a value: only `not in` can follow one
               ╭─[test.race:7:15]
             6 │   actor a {
             7 │     let b = 1 not 2
               ·               ─┬─
               ·                ╰── expected `not in`
             8 │     let c = 1 in
               ╰────
              help: write `x not in xs` for membership, or `not x` to negate
              × expected an expression, found keyword `let`
                ╭─[test.race:9:5]
              8 │     let c = 1 in
              9 │     let d = read(P) or
                ·     ─┬─
                ·      ╰── expected an expression
             10 │     let e = 1
                ╰────
              help: statements such as `let` or `if` start a line of their own
              × expected an expression, found keyword `let`
                ╭─[test.race:10:5]
              9 │     let d = read(P) or
             10 │     let e = 1
                ·     ─┬─
                ·      ╰── expected an expression
             11 │   }
                ╰────
              help: statements such as `let` or `if` start a line of their own
        "#]],
    );
}

#[test]
fn err_fallback_in_an_invariant_or_constant() {
    check_err(
        r#"scenario t {
  const X = read("/f") or ""
  actor a { }
  invariant i: always (read("/f") or "") == ""
}"#,
        expect![[r#"
            2 errors in test.race
              × a fallback `OP or VALUE` belongs in an actor or procedure
               ╭─[test.race:2:13]
             1 │ scenario t {
             2 │   const X = read("/f") or ""
               ·             ────────┬───────
               ·                     ╰── not in an invariant or constant
             3 │   actor a { }
               ╰────
              help: in an invariant `read(path)` is `none` when there is no file: compare with `none`, or use
                    `int(read(path))` (0 for none)
              × a fallback `OP or VALUE` belongs in an actor or procedure
               ╭─[test.race:4:23]
             3 │   actor a { }
             4 │   invariant i: always (read("/f") or "") == ""
               ·                       ─────────┬────────
               ·                                ╰── not in an invariant or constant
             5 │ }
               ╰────
              help: in an invariant `read(path)` is `none` when there is no file: compare with `none`, or use
                    `int(read(path))` (0 for none)
        "#]],
    );
}
