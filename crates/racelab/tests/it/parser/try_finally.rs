//! try / finally: the finally block runs on every way out but a crash, and its errors.

use expect_test::expect;
use racelab_core::lang::{compile, render_plain};

use super::{broken_in, check_err, check_ok, in_actor, FILE};

const TRY_FINALLY: &str = r#"scenario s {
  log l
  cell order = 0
  fs { dir "/d" }
  proc boom() { fail "boom" }
  proc leave_early() {
    try {
      return 1
    } finally {
      append l "cleaned"
    }
  }
  proc body() { append l "plain" }
  actor a {
    try {
      body()
    } finally {
      append l "cleaned"
    }
  }
  invariant cleaned_once: at end count(l, "cleaned") == 1
  invariant not_after: at end count(l, "after") == 0
  invariant inner_then_outer: at end order == 0 or order == 12
  variant normal { expect holds }
  variant fail-in-try {
    proc body() { fail "broken" }
    expect violates unhandled_error
  }
  variant fail-in-called-proc {
    proc body() { boom() append l "after" }
    expect violates unhandled_error
  }
  variant unhandled-operation-error {
    proc body() { unlink("/d/missing") }
    expect violates unhandled_error
  }
  variant failed-assertion {
    proc body() { assert false, "no" }
    expect violates assertion
  }
  variant return-from-try {
    proc body() { leave_early() leave_early() }
    expect violates cleaned_once
  }
  variant break-out-of-try {
    proc body() {
      loop {
        try { break } finally { append l "cleaned" }
      }
    }
    expect violates cleaned_once
  }
  variant nested {
    proc body() {
      try {
        try { fail "deep" } finally { set order = order * 10 + 1 }
      } finally {
        set order = order * 10 + 2
      }
    }
    expect violates unhandled_error
  }
  variant crash-skips-finally {
    proc body() { sleep 10s }
    fault die: crash a
    expect violates cleaned_once
  }
}"#;
#[test]
fn finally_runs_on_every_way_out_but_a_crash() {
    let expect_found = |variant: &str, want: &[&str]| {
        assert_eq!(broken_in(TRY_FINALLY, variant), want, "variant {variant}");
    };
    // The normal way out: the finally block runs once.
    expect_found("normal", &[]);
    // A `break` out of a try runs its finally block, and the actor's runs after: twice.
    expect_found("break-out-of-try", &["cleaned_once"]);
    // A failure runs it, then the actor still stops with the failure (and nothing after the
    // try runs): `cleaned_once` and `not_after` hold.
    expect_found("fail-in-try", &["unhandled_error"]);
    expect_found("fail-in-called-proc", &["unhandled_error"]);
    expect_found("unhandled-operation-error", &["unhandled_error"]);
    expect_found("failed-assertion", &["assertion"]);
    // Inner finally, then outer: order == 12.
    expect_found("nested", &["unhandled_error"]);
    // Each `return 1` out of a try runs its finally (twice), then the actor's (three times).
    expect_found("return-from-try", &["cleaned_once"]);
    // A signal handler's `exit` unwinds through the interrupted body's try: whenever the
    // signal cut the body short (no "after"), the finally block ran. (A signal that lands
    // while the finally block itself runs cuts that short, as in Python.)
    let signal = r#"scenario sig {
  log l
  proc on_term() { exit }
  actor a {
    on TERM call on_term()
    try {
      sleep 10s
      append l "after"
    } finally {
      append l "cleaned"
    }
  }
  fault term: signal a TERM
  invariant cleaned_if_cut_short: at end count(l, "after") == 1 or count(l, "cleaned") == 1
  invariant exited_early: at end count(l, "after") == 0
}"#;
    assert_eq!(broken_in(signal, "default"), ["exited_early"]);
    // Without the try, a signal in the sleep ends the actor without cleaning up.
    let bare = signal
        .replace("try {", "if true {")
        .replace("} finally {", "}\n    if false {");
    assert_eq!(
        broken_in(&bare, "default"),
        ["cleaned_if_cut_short", "exited_early"]
    );
    // A crash (SIGKILL) runs nothing: some schedule ends with no "cleaned".
    expect_found("crash-skips-finally", &["cleaned_once"]);
}

#[test]
fn try_finally_lowers_to_a_handler_and_two_copies_of_the_finally_block() {
    check_ok(
        &in_actor("    try {\n      unlink(P)\n    } finally {\n      append l \"x\"\n    }"),
        expect![[r#"
            scenario t
            variant default expect=none
              actors: a->a
              cells: c=Int(0)
              logs: l
              proc id/1 regs=1 [2]: ret= ret
              proc a/0 regs=1 [8]: try5 unlink tryleave append:l j7 append:l endfinally ret
        "#]],
    );
}

#[test]
fn err_try_without_finally_and_leaving_a_finally_block() {
    check_err(
        &in_actor(
            "    try { unlink(P) }\n    loop {\n      try { unlink(P) } finally { break }\n    }",
        ),
        expect![[r#"
            2 errors in test.race
              × expected `finally` after the `try` block, found `loop`
               ╭─[test.race:8:5]
             7 │     try { unlink(P) }
             8 │     loop {
               ·     ──┬─
               ·       ╰── expected `finally { ... }`
             9 │       try { unlink(P) } finally { break }
               ╰────
              help: write `try { ... } finally { ... }`: the finally block runs however the try block is left,
                    except by a crash
              × `break` cannot leave a `finally` block
                ╭─[test.race:9:35]
              8 │     loop {
              9 │       try { unlink(P) } finally { break }
                ·                                   ──┬──
                ·                                     ╰── leaves the finally block
             10 │     }
                ╰────
              help: a `finally` block runs to its end (it may be running because of a failure that must go
                    on); put the loop inside it, or move the `break` out of it
        "#]],
    );
    check_err(
        "scenario s {\n  proc p() {\n    try { } finally { return 1 }\n  }\n  actor a { p() }\n}\n",
        expect![[r#"
            1 error in test.race
              × `return` cannot leave a `finally` block
               ╭─[test.race:3:23]
             2 │   proc p() {
             3 │     try { } finally { return 1 }
               ·                       ────┬───
               ·                           ╰── leaves the finally block
             4 │   }
               ╰────
              help: a `finally` block runs to its end (it may be running because of a failure that must go
                    on); return after the `try`
        "#]],
    );
}

#[test]
fn err_try_nested_too_deep_in_finally_blocks() {
    // Each level doubles the lowered code; 60 levels would be 2^60 copies.
    let mut body = String::from("unlink(P)");
    for _ in 0..60 {
        body = format!("try {{ unlink(P) }} finally {{ {body} }}");
    }
    let src = in_actor(&format!("    {body}"));
    let e = compile(FILE, &src).expect_err("too deep");
    assert_eq!(e.diags.len(), 1, "{}", render_plain(&e));
    assert_eq!(e.diags[0].message, "`try` nested inside 4 `finally` blocks");
    // Four levels are fine.
    let mut ok = String::from("unlink(P)");
    for _ in 0..4 {
        ok = format!("try {{ unlink(P) }} finally {{ {ok} }}");
    }
    compile(FILE, &in_actor(&format!("    {ok}")))
        .unwrap_or_else(|e| panic!("{}", render_plain(&e)));
}
