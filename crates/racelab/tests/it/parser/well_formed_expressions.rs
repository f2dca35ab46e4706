//! Well-formed scenarios, part two: time, critical sections, strings, expressions, stat fields,
//! invariants, expectations and variants compile to the expected shape.

use expect_test::expect;
use racelab_core::lang::{compile, render_plain};
use racelab_lang::ir::Instr;

use super::{check_ok, expected, in_actor, FILE};

#[test]
fn time_sleep_work_now() {
    check_ok(
        &in_actor(
            r#"    let t = now
    sleep 10ms
    work 2m
    sleep t - now + 1h
    now"#,
        ),
        expect![[r#"
            scenario t
            variant default expect=none
              actors: a->a
              cells: c=Int(0)
              logs: l
              proc id/1 regs=1 [2]: ret= ret
              proc a/0 regs=4 [8]: now eval sleep work now sleep now ret
        "#]],
    );
}

#[test]
fn append_critical_assert_fail() {
    check_ok(
        &in_actor(
            r#"    append l "plain"
    append l "with {self} and {1 + 2}"
    critical sec {
      critical inner { work 1s }
      assert c == 0
      assert c >= 0, "negative: {c}"
    }
    critical sec { return }
    fail "boom""#,
        ),
        expect![[r#"
            scenario t
            variant default expect=none
              actors: a->a
              cells: c=Int(0)
              logs: l
              sections: sec inner
              proc id/1 regs=1 [2]: ret= ret
              proc a/0 regs=3 [20]: append:l append:l enter:sec enter:inner work leave:inner get:c jn9 assertfail get:c get:c jn13 assertfail leave:sec enter:sec leave:sec ret leave:sec fail ret
        "#]],
    );
}

#[test]
fn loops_leave_critical_sections_on_break_continue_return() {
    check_ok(
        &in_actor(
            r#"    loop {
      critical a {
        critical b {
          if c == 0 { break }
          continue
        }
      }
    }
    critical x { return 1 }"#,
        ),
        expect![[r#"
            scenario t
            variant default expect=none
              actors: a->a
              cells: c=Int(0)
              logs: l
              sections: a b x
              proc id/1 regs=1 [2]: ret= ret
              proc a/0 regs=1 [18]: enter:a enter:b get:c jn7 leave:b leave:a j13 leave:b leave:a j0 leave:b leave:a j0 enter:x leave:x ret= leave:x ret
        "#]],
    );
}

#[test]
fn strings_interpolation_and_escapes() {
    check_ok(
        r#"scenario s {
  const A = "x"
  const B = "{{literal}} {A}{A} \"q\" \\ tab\there"
  const C = "{A + A}-{1 + 2}"
  const D = "{{}}"
  const E = ""
  cell b = B
  cell c = C
  cell d = D
  cell e = E
  actor a { }
}"#,
        expect![[r#"
            scenario s
            variant default expect=none
              actors: a->a
              cells: b=Str("{literal} xx \"q\" \\ tab\there") c=Str("xx-3") d=Str("{}") e=Str("")
              proc a/0 regs=0 [1]: ret
        "#]],
    );
}

#[test]
fn expression_precedence() {
    // Constants are folded, so the cell values show how each expression was grouped.
    check_ok(
        r#"scenario s {
  cell a = 1 + 2 * 3
  cell b = (1 + 2) * 3
  cell c = 10 - 4 - 3
  cell d = 7 / 2 % 3
  cell e = -2 * 3
  cell f = 1 + 1 == 2
  cell g = 1 < 2 and 2 <= 2 and 3 > 2 and 3 >= 3 and 1 != 2
  cell h = true or false and false
  cell i = not 1 == 2
  cell j = not true or true
  cell k = not (true or true)
  cell l = false and false or true
  cell m = "a" == "a" and none == none
  actor z { }
}"#,
        expect![[r#"
            scenario s
            variant default expect=none
              actors: z->z
              cells: a=Int(7) b=Int(9) c=Int(3) d=Int(0) e=Int(-6) f=Bool(true) g=Bool(true) h=Bool(true) i=Bool(true) j=Bool(true) k=Bool(false) l=Bool(true) m=Bool(true)
              proc z/0 regs=0 [1]: ret
        "#]],
    );
}

#[test]
fn short_circuit_with_effects() {
    check_ok(
        &in_actor(
            r#"    let x = c == 0 and id(1) == 1
    let y = c == 1 or exists_file()
    let z = 1 < 2 and 2 < 3"#,
        )
        .replace(
            "proc id(v) { return v }",
            "proc id(v) { return v }\n  proc exists_file() { return true }",
        ),
        expect![[r#"
            scenario t
            variant default expect=none
              actors: a->a
              cells: c=Int(0)
              logs: l
              proc id/1 regs=1 [2]: ret= ret
              proc exists_file/0 regs=0 [2]: ret= ret
              proc a/0 regs=9 [14]: get:c eval jn5 call:id= eval eval get:c eval jn11 call:exists_file= eval eval eval ret
        "#]],
    );
}

#[test]
fn stat_fields_and_every_fs_op() {
    check_ok(
        &in_actor(
            r#"    create(P)
    create(P, excl)
    write(P, "data")
    let s = read(P)
    link(P, "/g")
    unlink("/g")
    rename(P, "/h")
    let st = stat("/h")
    let sum = st.nlink + st.mtime + st.size + st.ino
    utime("/h", now + 1s)
    touch("/h")
    mkdir("/dir")
    rmdir("/dir")
    let n = len(s) + min(1, 2) + max(1, 2)
    let b = contains(s, "a")
    let t = str(n)"#,
        ),
        expect![[r#"
            scenario t
            variant default expect=none
              actors: a->a
              cells: c=Int(0)
              logs: l
              proc id/1 regs=1 [2]: ret= ret
              proc a/0 regs=19 [20]: create create! write read eval link unlink rename stat eval eval now utime touch mkdir rmdir eval eval eval ret
        "#]],
    );
}

#[test]
fn invariants_always_and_at_end_with_queries() {
    check_ok(
        r#"scenario s {
  const P = "/lock"
  cell owners = 0
  log events
  invariant one_holder: always holders(sec) <= 1
  invariant quiet: always count(events) == 0
  invariant no_oops: at end count(events, "oops") == 0
  invariant cleaned: at end not exists(P)
  invariant content: at end read(P) == none or read("/lock") == "me"
  invariant cells: always owners >= 0 and now >= 0
  invariant pure: always len("ab") == 2 and contains("abc", "b") and min(1, 2) < max(1, 2) and str(1) == "1"
  actor a { critical sec { append events "x" } }
}"#,
        expect![[r#"
            scenario s
            variant default expect=none
              actors: a->a
              cells: owners=Int(0)
              logs: events
              sections: sec
              invariant one_holder: always holders(sec) <= 1
              invariant quiet: always count(events) == 0
              invariant no_oops: at end count(events, "oops") == 0
              invariant cleaned: at end not exists(P)
              invariant content: at end read(P) == none or read("/lock") == "me"
              invariant cells: always owners >= 0 and now >= 0
              invariant pure: always len("ab") == 2 and contains("abc", "b") and min(1, 2) < max(1, 2) and str(1) == "1"
              proc a/0 regs=0 [4]: enter:sec append:events leave:sec ret
        "#]],
    );
}

#[test]
fn top_level_expectations() {
    for (exp, want) in [
        ("expect holds", "holds"),
        ("expect deadlock", "deadlock"),
        ("expect violates inv", "violates(inv)"),
        (
            "expect violates inv, assertion, unhandled_error, deadlock, livelock",
            "violates(inv,assertion,unhandled_error,deadlock,livelock)",
        ),
        (
            "expect violates inv\n  expect violates assertion",
            "violates(inv,assertion)",
        ),
    ] {
        let src =
            format!("scenario s {{\n  invariant inv: always true\n  actor a {{ }}\n  {exp}\n}}");
        let sc = compile(FILE, &src).unwrap_or_else(|e| panic!("{exp}: {}", render_plain(&e)));
        assert_eq!(sc.variant_names(), ["default"]);
        assert_eq!(expected(&sc.variants[0].expected), want, "{exp}");
    }
}

#[test]
fn variants_replace_consts_and_procs() {
    check_ok(
        r#"scenario s {
  const N = 1
  const NAP = 1s
  log l
  proc step(x) { append l "{x}" }
  proc other() { }
  actor a { step(N) sleep NAP }
  invariant quiet: always count(l) <= N
  variant base {
    expect violates quiet
  }
  variant more {
    const N = 5
    proc step(y) {
      append l "{y}"
      append l "again"
    }
    expect holds
  }
  variant stuck {
    const NAP = 2s
    expect deadlock
  }
  variant no-expectation { }
}"#,
        expect![[r#"
            scenario s
            variant base expect=violates(quiet)
              actors: a->a
              logs: l
              invariant quiet: always count(l) <= N
              proc step/1 regs=1 [2]: append:l ret
              proc other/0 regs=0 [1]: ret
              proc a/0 regs=0 [3]: call:step sleep ret
            variant more expect=holds
              actors: a->a
              logs: l
              invariant quiet: always count(l) <= N
              proc step/1 regs=1 [3]: append:l append:l ret
              proc other/0 regs=0 [1]: ret
              proc a/0 regs=0 [3]: call:step sleep ret
            variant stuck expect=deadlock
              actors: a->a
              logs: l
              invariant quiet: always count(l) <= N
              proc step/1 regs=1 [2]: append:l ret
              proc other/0 regs=0 [1]: ret
              proc a/0 regs=0 [3]: call:step sleep ret
            variant no-expectation expect=none
              actors: a->a
              logs: l
              invariant quiet: always count(l) <= N
              proc step/1 regs=1 [2]: append:l ret
              proc other/0 regs=0 [1]: ret
              proc a/0 regs=0 [3]: call:step sleep ret
        "#]],
    );
    // The replaced constant is visible in the lowered code, not only in the rendering above.
    let sc = compile(FILE, "scenario s {\n const N = 1\n actor a { sleep N }\n variant one { }\n variant two { const N = 2 }\n}").unwrap();
    let arg = |v: &str| match &sc.variant(v).unwrap().procs[0].code[0] {
        Instr::Op { args, .. } => format!("{:?}", args[0]),
        other => panic!("{other:?}"),
    };
    assert_eq!(arg("one"), "Const(Int(1))");
    assert_eq!(arg("two"), "Const(Int(2))");
}

#[test]
fn statements_separated_by_semicolons_and_comments() {
    check_ok(
        "scenario s { # trailing comment\n  actor a { let x = 1; let y = 2; x = y # done\n  }\n}\n",
        expect![[r#"
            scenario s
            variant default expect=none
              actors: a->a
              proc a/0 regs=2 [4]: eval eval eval ret
        "#]],
    );
}
