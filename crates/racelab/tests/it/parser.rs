//! Expect-tests for the scenario language: every construct compiles to the expected shape, and
//! malformed inputs produce the expected diagnostics (rendered in full, as a user sees them).

use std::fmt::Write as _;

use expect_test::{expect, Expect};
use racelab_lang::ir::{self, Instr, Program};
use racelab_core::lang::{compile, render_plain, Scenario};

const FILE: &str = "test.race";

/// A compact, stable rendering of a compiled scenario: metadata, and per variant its
/// declarations, invariants and one line per procedure with a short tag per instruction.
fn render(sc: &Scenario) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "scenario {}", sc.name);
    if let Some(a) = &sc.about {
        let _ = writeln!(out, "about {a:?}");
    }
    for s in &sc.sources {
        let _ = writeln!(out, "source {s:?}");
    }
    for p in &sc.variants {
        render_program(&mut out, p);
    }
    out
}

fn render_program(out: &mut String, p: &Program) {
    let _ = writeln!(
        out,
        "variant {} expect={}",
        p.variant,
        expected(&p.expected)
    );
    let actors: Vec<String> = p
        .actors
        .iter()
        .map(|a| format!("{}->{}", a.name, p.procs[a.proc as usize].name))
        .collect();
    let _ = writeln!(out, "  actors: {}", actors.join(" "));
    if !p.cells.is_empty() {
        let cells: Vec<String> = p.cells.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
        let _ = writeln!(out, "  cells: {}", cells.join(" "));
    }
    if !p.logs.is_empty() {
        let _ = writeln!(out, "  logs: {}", p.logs.join(" "));
    }
    if !p.sections.is_empty() {
        let _ = writeln!(out, "  sections: {}", p.sections.join(" "));
    }
    for f in &p.fs {
        match f {
            ir::FsInit::Dir(d) => {
                let _ = writeln!(out, "  fs dir {d:?}");
            }
            ir::FsInit::File(path, c) => {
                let _ = writeln!(out, "  fs file {path:?} = {c:?}");
            }
        }
    }
    for i in &p.invariants {
        let when = match i.when {
            ir::When::Always => "always",
            ir::When::AtEnd => "at end",
        };
        let _ = writeln!(out, "  invariant {}: {when} {}", i.name, i.text);
    }
    for pr in &p.procs {
        let code: Vec<String> = pr.code.iter().map(|i| instr(p, i)).collect();
        let _ = writeln!(
            out,
            "  proc {}/{} regs={} [{}]: {}",
            pr.name,
            pr.nparams,
            pr.nregs,
            pr.code.len(),
            code.join(" ")
        );
    }
}

fn expected(e: &Option<ir::Expected>) -> String {
    match e {
        None => "none".into(),
        Some(ir::Expected::Holds) => "holds".into(),
        Some(ir::Expected::Deadlock) => "deadlock".into(),
        Some(ir::Expected::Violates(v)) => format!("violates({})", v.join(",")),
    }
}

/// One short tag per instruction: `op` names the operation (`?` when its error is caught),
/// jumps show their target, calls the procedure called.
fn instr(p: &Program, i: &Instr) -> String {
    match i {
        Instr::Eval { .. } => "eval".into(),
        Instr::Op { op, catch, .. } => {
            let name = match op {
                ir::Op::Create { excl: true } => "create!".to_string(),
                ir::Op::CellGet(c) | ir::Op::CellSet(c) => {
                    format!("{}:{}", op.name(), p.cells[*c as usize].0)
                }
                ir::Op::Append(l) => format!("append:{}", p.logs[*l as usize]),
                _ => op.name().to_string(),
            };
            format!("{name}{}", if *catch { "?" } else { "" })
        }
        Instr::Jump(t) => format!("j{t}"),
        Instr::JumpIfNot(_, t) => format!("jn{t}"),
        Instr::Call { proc, dst, .. } => format!(
            "call:{}{}",
            p.procs[*proc as usize].name,
            if dst.is_some() { "=" } else { "" }
        ),
        Instr::Return(v) => if v.is_some() { "ret=" } else { "ret" }.into(),
        Instr::Enter(s) => format!("enter:{}", p.sections[*s as usize]),
        Instr::Leave(s) => format!("leave:{}", p.sections[*s as usize]),
        Instr::Fail { kind, .. } => match kind {
            ir::FailKind::Assertion => "assertfail".into(),
            ir::FailKind::Raised => "fail".into(),
        },
        Instr::Unhandled { .. } => "unhandled".into(),
        Instr::SetLocal { local, .. } => format!("local:{}", p.locals[*local as usize].0),
        Instr::Handle { signal, proc, .. } => match proc {
            Some(h) => format!("on:{}:{}", signal.name(), p.procs[*h as usize].name),
            None => format!("on:{}:default", signal.name()),
        },
        Instr::Exit => "exit".into(),
        Instr::TryEnter(t) => format!("try{t}"),
        Instr::TryLeave => "tryleave".into(),
        Instr::EndFinally => "endfinally".into(),
    }
}

#[track_caller]
pub(super) fn check_ok(src: &str, expect: Expect) {
    match compile(FILE, src) {
        Ok(sc) => expect.assert_eq(&render(&sc)),
        Err(e) => panic!(
            "expected the scenario to compile, got:\n{}",
            render_plain(&e)
        ),
    }
}

#[track_caller]
pub(super) fn check_err(src: &str, expect: Expect) {
    match compile(FILE, src) {
        Ok(sc) => panic!(
            "expected errors, but the scenario compiled:\n{}",
            render(&sc)
        ),
        Err(e) => {
            let text = render_plain(&e);
            assert_eq!(
                e.diags.len(),
                text.matches(FILE).count(),
                "every diagnostic names the file:\n{text}"
            );
            // The summary line starts at column 0, which also keeps expect-test's indentation
            // trimming from eating the report's own leading spaces.
            expect.assert_eq(&format!("{e}\n{text}"));
        }
    }
}

/// Wraps statements in a scenario with one actor and the usual declarations.
pub(super) fn in_actor(body: &str) -> String {
    format!(
        "scenario t {{\n  const P = \"/f\"\n  cell c = 0\n  log l\n  proc id(v) {{ return v }}\n  actor a {{\n{body}\n  }}\n}}\n"
    )
}

// ============================================================================ well-formed input

#[test]
fn mailman_lockfile() {
    let src = include_str!("../../../../scenarios/mailman-lockfile.race");
    let sc = compile(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scenarios/mailman-lockfile.race"
        ),
        src,
    )
    .unwrap_or_else(|e| panic!("{}", render_plain(&e)));
    assert_eq!(
        sc.variant_names(),
        [
            "mailman-2.1",
            "two-busy-qrunners",
            "patched",
            "patched-crash",
            "patched-stall",
            "nfs-mailman-2.1",
            "nfs-patched",
            "nfs-lost-reply"
        ]
    );
    let short: String = render(&sc)
        .lines()
        .filter(|l| !l.starts_with("  proc"))
        .map(|l| format!("{l}\n"))
        .collect();
    expect![[r#"
        scenario mailman-lockfile
        about "qrunners contend for a list lock; a waiter that saw EEXIST can find the lock file gone, log nonsense, and break a lock that someone else has just taken"
        source "seed 001: mailman-Patches-1045656, Race in LockFile.py resulting in extraneous log entries (Brian Greenberg, 2004-10-12)"
        source "Mailman/LockFile.py (Mailman 2.1.39): LockFile.lock(), unlock(), locked(), __break(), __linkcount(), __releasetime(), __touch(), __write(), __read(), __sleep()"
        variant mailman-2.1 expect=violates(no_spurious_log,mutual_exclusion,unhandled_error)
          actors: qrunner1->qrunner qrunner2->qrunner qrunner3->qrunner
          logs: locks
          sections: list
          fs dir "/var/lib/mailman/locks"
          invariant mutual_exclusion: always holders(list) <= 1
          invariant no_spurious_log: always count(locks) == 0
        variant two-busy-qrunners expect=violates(no_spurious_log,mutual_exclusion,unhandled_error)
          actors: qrunner1->qrunner qrunner2->qrunner qrunner3->qrunner
          logs: locks
          sections: list
          fs dir "/var/lib/mailman/locks"
          invariant mutual_exclusion: always holders(list) <= 1
          invariant no_spurious_log: always count(locks) == 0
        variant patched expect=violates(no_spurious_log)
          actors: qrunner1->qrunner qrunner2->qrunner qrunner3->qrunner
          logs: locks
          sections: list
          fs dir "/var/lib/mailman/locks"
          invariant mutual_exclusion: always holders(list) <= 1
          invariant no_spurious_log: always count(locks) == 0
        variant patched-crash expect=violates(no_spurious_log,mutual_exclusion,unhandled_error)
          actors: qrunner1->qrunner qrunner2->qrunner qrunner3->qrunner
          logs: locks
          sections: list
          fs dir "/var/lib/mailman/locks"
          invariant mutual_exclusion: always holders(list) <= 1
          invariant no_spurious_log: always count(locks) == 0
        variant patched-stall expect=violates(no_spurious_log,mutual_exclusion,unhandled_error)
          actors: qrunner1->qrunner qrunner2->qrunner qrunner3->qrunner
          logs: locks
          sections: list
          fs dir "/var/lib/mailman/locks"
          invariant mutual_exclusion: always holders(list) <= 1
          invariant no_spurious_log: always count(locks) == 0
        variant nfs-mailman-2.1 expect=violates(no_spurious_log,mutual_exclusion,unhandled_error)
          actors: qrunner1->qrunner qrunner2->qrunner qrunner3->qrunner
          logs: locks
          sections: list
          fs dir "/var/lib/mailman/locks"
          invariant mutual_exclusion: always holders(list) <= 1
          invariant no_spurious_log: always count(locks) == 0
        variant nfs-patched expect=holds
          actors: qrunner1->qrunner qrunner2->qrunner qrunner3->qrunner
          logs: locks
          sections: list
          fs dir "/var/lib/mailman/locks"
          invariant mutual_exclusion: always holders(list) <= 1
          invariant no_spurious_log: always count(locks) == 0
        variant nfs-lost-reply expect=violates(no_spurious_log,mutual_exclusion,unhandled_error)
          actors: qrunner1->qrunner qrunner2->qrunner qrunner3->qrunner
          logs: locks
          sections: list
          fs dir "/var/lib/mailman/locks"
          invariant mutual_exclusion: always holders(list) <= 1
          invariant no_spurious_log: always count(locks) == 0
    "#]]
    .assert_eq(&short);
    // `patched` replaces `lock` only: every other procedure lowers identically.
    let variant = |name: &str| {
        sc.variants
            .iter()
            .find(|v| v.variant == name)
            .unwrap_or_else(|| panic!("variant {name}"))
    };
    let (a, b) = (variant("mailman-2.1"), variant("patched"));
    for (pa, pb) in a.procs.iter().zip(&b.procs) {
        assert_eq!(pa.name, pb.name);
        assert_eq!(
            pa.code == pb.code,
            pa.name != "lock",
            "procedure {}",
            pa.name
        );
    }
}

#[test]
fn header_about_sources_and_consts() {
    check_ok(
        r#"
# a comment before the scenario
scenario demo-1.2 {
  about "what it shows"
  source "one"
  source "two"
  source "three"
  const MS = 10ms
  const S = 15s
  const M = 2m
  const H = 1h
  const N = 1_000
  const SUM = MS + S * 2 - -1
  const TXT = "a{N}b"
  const YES = true
  const NO = false
  const NOTHING = none
  cell c = SUM
  cell m = M
  cell h = H
  cell t = TXT
  cell y = YES
  cell n = NO
  cell z = NOTHING
  actor a { }
}
"#,
        expect![[r#"
            scenario demo-1.2
            about "what it shows"
            source "one"
            source "two"
            source "three"
            variant default expect=none
              actors: a->a
              cells: c=Int(30011) m=Int(120000) h=Int(3600000) t=Str("a1000b") y=Bool(true) n=Bool(false) z=None
              proc a/0 regs=0 [1]: ret
        "#]],
    );
}

#[test]
fn fs_cell_log_and_actor_counts() {
    check_ok(
        r#"scenario s {
  const DIR = "/d"
  fs {
    dir "/d"
    dir "{DIR}/sub"
    file "/d/a" = "hello"
    file "/d/empty"
  }
  cell counter = 0
  log events
  log other
  actor one { }
  actor many x 3 { }
}"#,
        expect![[r#"
            scenario s
            variant default expect=none
              actors: one->one many1->many many2->many many3->many
              cells: counter=Int(0)
              logs: events other
              fs dir "/d"
              fs dir "/d/sub"
              fs file "/d/a" = "hello"
              fs file "/d/empty" = ""
              proc one/0 regs=0 [1]: ret
              proc many/0 regs=0 [1]: ret
        "#]],
    );
}

#[test]
fn procs_params_and_returns() {
    check_ok(
        r#"scenario s {
  proc nothing() { }
  proc early(a) {
    if a { return }
    return
  }
  proc sum(a, b, c) { return a + b + c }
  proc twice(x) {
    let y = sum(x, x, 0)
    return y
  }
  actor a {
    nothing()
    early(true)
    let v = twice(2)
    sum(v, 1, 2)
  }
}"#,
        expect![[r#"
            scenario s
            variant default expect=none
              actors: a->a
              proc nothing/0 regs=0 [1]: ret
              proc early/1 regs=1 [4]: jn2 ret ret ret
              proc sum/3 regs=3 [2]: ret= ret
              proc twice/1 regs=3 [4]: call:sum= eval ret= ret
              proc a/0 regs=2 [6]: call:nothing call:early call:twice= eval call:sum ret
        "#]],
    );
}

#[test]
fn let_assign_set_and_cells() {
    check_ok(
        &in_actor(
            r#"    let x = 1
    x = x + 1
    set c = x
    let y = c
    set c = c + y"#,
        ),
        expect![[r#"
            scenario t
            variant default expect=none
              actors: a->a
              cells: c=Int(0)
              logs: l
              proc id/1 regs=1 [2]: ret= ret
              proc a/0 regs=4 [8]: eval eval set:c get:c eval get:c set:c ret
        "#]],
    );
}

#[test]
fn if_else_if_else() {
    check_ok(
        &in_actor(
            r#"    let x = 1
    if x == 1 {
      x = 2
    } else if x == 2 {
      x = 3
    } else if x == 3 { x = 4 } else {
      x = 5
    }
    if x > 0 { x = 0 }"#,
        ),
        expect![[r#"
            scenario t
            variant default expect=none
              actors: a->a
              cells: c=Int(0)
              logs: l
              proc id/1 regs=1 [2]: ret= ret
              proc a/0 regs=1 [14]: eval jn4 eval j11 jn7 eval j11 jn10 eval j11 eval jn13 eval ret
        "#]],
    );
}

#[test]
fn loops_while_break_continue() {
    check_ok(
        &in_actor(
            r#"    let i = 0
    loop {
      i = i + 1
      if i == 2 { continue }
      if i > 5 { break }
    }
    while i > 0 {
      i = i - 1
      if i == 3 { break } else { continue }
    }
    loop { break }"#,
        ),
        expect![[r#"
            scenario t
            variant default expect=none
              actors: a->a
              cells: c=Int(0)
              logs: l
              proc id/1 regs=1 [2]: ret= ret
              proc a/0 regs=1 [17]: eval eval jn4 j1 jn6 j7 j1 jn14 eval jn12 j14 j13 j7 j7 j16 j14 ret
        "#]],
    );
}

#[test]
fn match_patterns_on_operations() {
    check_ok(
        &in_actor(
            r#"    match stat(P) {
      ok(st) => { let n = st.nlink }
      err(ENOENT) => {}
      err(e) => { append l "error {e}" }
    }
    match read(P) {
      ok => {}
      err => fail "cannot read"
    }
    match unlink(P) {
      ok(_) => {}
      _ => {}
    }
    match mkdir(P) {
      ok => {}
      err(EEXIST) => {}
    }"#,
        ),
        expect![[r#"
            scenario t
            variant default expect=none
              actors: a->a
              cells: c=Int(0)
              logs: l
              proc id/1 regs=1 [2]: ret= ret
              proc a/0 regs=6 [27]: stat? jn4 eval j10 jn6 j10 eval jn10 append:l j10 read? jn13 j16 jn16 fail j16 unlink? jn19 j20 j20 mkdir? jn23 j26 jn25 j26 unhandled ret
        "#]],
    );
}

#[test]
fn match_literal_patterns_on_values() {
    check_ok(
        &in_actor(
            r#"    let x = id(2)
    match x {
      1 => { set c = 1 }
      "two" => set c = 2
      none => {}
      true => {}
      -3 => {}
      _ => { set c = 0 }
    }"#,
        ),
        expect![[r#"
            scenario t
            variant default expect=none
              actors: a->a
              cells: c=Int(0)
              logs: l
              proc id/1 regs=1 [2]: ret= ret
              proc a/0 regs=3 [18]: call:id= eval eval jn6 set:c j17 jn9 set:c j17 jn11 j17 jn13 j17 jn15 j17 set:c j17 ret
        "#]],
    );
}

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

// ============================================================================ malformed input

#[test]
fn err_missing_closing_brace() {
    check_err(
        "scenario s {\n  actor a {\n    sleep 1s\n",
        expect![[r#"
            3 errors in test.race
              × the scenario has no actors
               ╭─[test.race:1:1]
             1 │ scenario s {
               · ▲
               · ╰── nothing would run
             2 │   actor a {
               ╰────
              help: declare at least one actor: `actor worker x 2 { ... }`
              × unexpected end of file
               ╭─[test.race:4:1]
             3 │     sleep 1s
               ╰────
              help: add the missing `}`
              × unexpected end of file
               ╭─[test.race:4:1]
             3 │     sleep 1s
               ╰────
              help: add the `}` that closes `scenario { ... }`
        "#]],
    );
}

#[test]
fn err_unterminated_string() {
    check_err(
        "scenario s {\n  about \"never closed\n  actor a { }\n}\n",
        expect![[r#"
            1 error in test.race
              × unterminated string
               ╭─[test.race:2:9]
             1 │ scenario s {
             2 │   about "never closed
               ·         ──────┬──────
               ·               ╰── this string is never closed
             3 │   actor a { }
               ╰────
              help: close the string with `"` on the same line
        "#]],
    );
}

#[test]
fn err_unknown_duration_unit() {
    check_err(
        "scenario s {\n  const NAP = 5q\n  actor a { sleep NAP }\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown duration unit `q`
               ╭─[test.race:2:16]
             1 │ scenario s {
             2 │   const NAP = 5q
               ·                ┬
               ·                ╰── unknown unit
             3 │   actor a { sleep NAP }
               ╰────
              help: durations are written like `10ms`, `15s`, `2m` or `1h`
        "#]],
    );
}

#[test]
fn err_unknown_operation_suggests_link() {
    check_err(
        "scenario s {\n  actor a {\n    lnk(\"/a\", \"/b\")\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown operation or procedure `lnk`
               ╭─[test.race:3:5]
             2 │   actor a {
             3 │     lnk("/a", "/b")
               ·     ─┬─
               ·      ╰── unknown
             4 │   }
               ╰────
              help: did you mean `link`? operations: create, write, read, link, unlink, rename, stat, utime,
                    touch, mkdir, rmdir, glob, open, flock, fstat, close, len, str, int, contains, min, max,
                    first, push, put, rest, remove
        "#]],
    );
}

#[test]
fn err_wrong_arity_of_operation() {
    check_err(
        "scenario s {\n  actor a {\n    rename(\"/a\")\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × `rename` takes 2 arguments, not 1
               ╭─[test.race:3:5]
             2 │   actor a {
             3 │     rename("/a")
               ·     ──────┬─────
               ·           ╰── wrong number of arguments
             4 │   }
               ╰────
              help: write `rename(from, to)`
        "#]],
    );
}

#[test]
fn err_wrong_arity_of_procedure() {
    check_err(
        "scenario s {\n  proc p(a, b) { }\n  actor a {\n    p(1)\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × procedure `p` takes 2 arguments, not 1
               ╭─[test.race:4:5]
             3 │   actor a {
             4 │     p(1)
               ·     ──┬─
               ·       ╰── wrong number of arguments
             5 │   }
               ╰────
              help: match the procedure's parameters
        "#]],
    );
}

#[test]
fn err_create_second_argument_not_excl() {
    check_err(
        "scenario s {\n  actor a {\n    create(\"/a\", true)\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × the second argument of `create` can only be `excl`
               ╭─[test.race:3:18]
             2 │   actor a {
             3 │     create("/a", true)
               ·                  ──┬─
               ·                    ╰── expected `excl`
             4 │   }
               ╰────
              help: write `create(path)` or `create(path, excl)` for O_EXCL
        "#]],
    );
}

#[test]
fn err_descriptor_operations_flags_and_arity() {
    check_err(
        "scenario s {\n  actor a {\n    let fd = open(\"/a\", excl)\n    flock(fd, ex)\n    fstat(fd, 1)\n    close()\n  }\n}\n",
        expect![[r#"
            4 errors in test.race
              × the second argument of `open` can only be `creat`
               ╭─[test.race:3:25]
             2 │   actor a {
             3 │     let fd = open("/a", excl)
               ·                         ──┬─
               ·                           ╰── expected `creat`
             4 │     flock(fd, ex)
               ╰────
              help: write `open(path) or open(path, creat)`
              × the second argument of `flock` can only be `un`
               ╭─[test.race:4:15]
             3 │     let fd = open("/a", excl)
             4 │     flock(fd, ex)
               ·               ─┬
               ·                ╰── expected `un`
             5 │     fstat(fd, 1)
               ╰────
              help: write `flock(fd) (LOCK_EX|LOCK_NB) or flock(fd, un) (LOCK_UN)`
              × `fstat` takes 1 argument, not 2
               ╭─[test.race:5:5]
             4 │     flock(fd, ex)
             5 │     fstat(fd, 1)
               ·     ──────┬─────
               ·           ╰── wrong number of arguments
             6 │     close()
               ╰────
              help: write `fstat(fd)`
              × `close` takes 1 argument, not 0
               ╭─[test.race:6:5]
             5 │     fstat(fd, 1)
             6 │     close()
               ·     ───┬───
               ·        ╰── wrong number of arguments
             7 │   }
               ╰────
              help: write `close(fd)`
        "#]],
    );
}

#[test]
fn err_unknown_errno() {
    check_err(
        "scenario s {\n  actor a {\n    match stat(\"/a\") {\n      ok => {}\n      err(ENOFILE) => {}\n    }\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown errno `ENOFILE`
               ╭─[test.race:5:11]
             4 │       ok => {}
             5 │       err(ENOFILE) => {}
               ·           ───┬───
               ·              ╰── not an errno
             6 │     }
               ╰────
              help: known errnos: EPERM, ENOENT, EINTR, EIO, EBADF, EAGAIN, EACCES, EBUSY, EEXIST, EXDEV,
                    ENOTDIR, EISDIR, EINVAL, ENOSPC, EROFS, EMLINK, ENAMETOOLONG, ENOTEMPTY, ELOOP, ESTALE,
                    IntegrityError, OperationalError, ProgrammingError
        "#]],
    );
}

#[test]
fn err_unknown_variable_with_typo_suggestion() {
    check_err(
        "scenario s {\n  actor a {\n    let counter = 1\n    let y = countr + 1\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown name `countr`
               ╭─[test.race:4:13]
             3 │     let counter = 1
             4 │     let y = countr + 1
               ·             ───┬──
               ·                ╰── not declared
             5 │   }
               ╰────
              help: did you mean `counter`?
        "#]],
    );
}

#[test]
fn err_errno_used_as_value() {
    check_err(
        "scenario s {\n  actor a {\n    let e = ENOENT\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown name `ENOENT`
               ╭─[test.race:3:13]
             2 │   actor a {
             3 │     let e = ENOENT
               ·             ───┬──
               ·                ╰── not declared
             4 │   }
               ╰────
              help: errno names are matched with `err(NAME)` in a `match` arm
        "#]],
    );
}

#[test]
fn err_assignment_to_undeclared() {
    check_err(
        "scenario s {\n  actor a {\n    x = 1\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × assignment to undeclared variable `x`
               ╭─[test.race:3:5]
             2 │   actor a {
             3 │     x = 1
               ·     ┬
               ·     ╰── not declared
             4 │   }
               ╰────
              help: declare it first: `let x = ...`
        "#]],
    );
}

#[test]
fn err_assignment_to_cell_without_set() {
    check_err(
        "scenario s {\n  cell c = 0\n  actor a {\n    c = 1\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × `c` is a shared cell
               ╭─[test.race:4:5]
             3 │   actor a {
             4 │     c = 1
               ·     ┬
               ·     ╰── a cell
             5 │   }
               ╰────
              help: write a cell with `set c = ...`; that is a step
        "#]],
    );
}

#[test]
fn err_set_unknown_cell() {
    check_err(
        "scenario s {\n  actor a {\n    set nothere = 1\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown cell `nothere`
               ╭─[test.race:3:9]
             2 │   actor a {
             3 │     set nothere = 1
               ·         ───┬───
               ·            ╰── not a cell
             4 │   }
               ╰────
              help: declare it at the top level: `cell NAME = initial value`
        "#]],
    );
}

#[test]
fn err_append_unknown_log() {
    check_err(
        "scenario s {\n  actor a {\n    append nolog \"x\"\n  }\n}\n",
        expect![[r#"
            1 error in test.race
              × unknown log `nolog`
               ╭─[test.race:3:12]
             2 │   actor a {
             3 │     append nolog "x"
               ·            ──┬──
               ·              ╰── not a log
             4 │   }
               ╰────
              help: declare it at the top level: `log NAME`
        "#]],
    );
}

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

// ============================================================ the server's databases (issue 6)

#[test]
fn named_databases_connect_close_and_connections() {
    check_ok(
        "scenario t {\n  database rw\n  database ro\n  local conn = none\n  actor a {\n    conn = connect(\"rw\")\n    close(conn)\n  }\n  invariant none_open: at end connections(\"rw\") == 0\n  variant v { expect holds }\n}\n",
        expect![[r#"
            scenario t
            variant v expect=holds
              actors: a->a
              invariant none_open: at end connections("rw") == 0
              proc a/0 regs=2 [4]: connect local:conn close ret
        "#]],
    );
}

#[test]
fn err_connect_without_a_named_database() {
    check_err(
        "scenario t {\n  actor a {\n    let c = connect(\"rw\")\n  }\n}\n",
        expect![[r#"
        1 error in test.race
          × `connect` needs a database to connect to
           ╭─[test.race:3:13]
         2 │   actor a {
         3 │     let c = connect("rw")
           ·             ───┬───
           ·                ╰── no `database NAME` declared
         4 │   }
           ╰────
          help: declare the server's databases first: `database rw_main_master`
    "#]],
    );
}

#[test]
fn err_connect_to_an_undeclared_database() {
    check_err(
        "scenario t {\n  database rw_main_master\n  actor a {\n    let c = connect(\"rw_main_mastr\")\n  }\n  invariant i: at end connections(\"ro\") == 0\n}\n",
        expect![[r#"
            2 errors in test.race
              × no database is named rw_main_mastr
               ╭─[test.race:4:21]
             3 │   actor a {
             4 │     let c = connect("rw_main_mastr")
               ·                     ───────┬───────
               ·                            ╰── unknown database
             5 │   }
               ╰────
              help: declared databases: "rw_main_master"; declare others with `database NAME`
              × no database is named ro
               ╭─[test.race:6:35]
             5 │   }
             6 │   invariant i: at end connections("ro") == 0
               ·                                   ──┬─
               ·                                     ╰── unknown database
             7 │ }
               ╰────
              help: declared databases: "rw_main_master"; declare others with `database NAME`
        "#]],
    );
}

#[test]
fn err_procedure_named_like_an_operation() {
    check_err("scenario t {\n  proc touch(p) {\n    return p\n  }\n  actor a {\n    touch(\"/f\")\n  }\n}\n", expect![[r#"
        1 error in test.race
          × a procedure cannot be named `touch`: that is an operation
           ╭─[test.race:2:8]
         1 │ scenario t {
         2 │   proc touch(p) {
           ·        ──┬──
           ·          ╰── the name of an operation
         3 │     return p
           ╰────
          help: calls of `touch` would run the operation, not this procedure; rename it (e.g. `touch_`)
    "#]]);
}

// ============================================================================ variant inheritance

const EXTENDS: &str = r#"scenario s {
  const NAP = 1s
  log l
  proc step() { append l "plain" }
  actor a { step() sleep NAP }
  invariant quiet: always count(l) <= 1
  variant patched {
    proc step() {
      append l "patched"
      append l "twice"
    }
    fault die: crash a
    expect violates quiet
  }
  variant patched-crash extends patched {
    fault hang: stall a for 5s
    faults 2
    expect holds
  }
  variant patched-slow extends patched-crash {
    const NAP = 3s
    fault die: stall a for 1s
  }
}"#;

#[test]
fn a_variant_extends_another_and_inherits_its_replacements_and_expectations() {
    check_ok(
        EXTENDS,
        expect![[r#"
            scenario s
            variant patched expect=violates(quiet)
              actors: a->a
              logs: l
              invariant quiet: always count(l) <= 1
              proc step/0 regs=0 [3]: append:l append:l ret
              proc a/0 regs=0 [3]: call:step sleep ret
            variant patched-crash expect=holds
              actors: a->a
              logs: l
              invariant quiet: always count(l) <= 1
              proc step/0 regs=0 [3]: append:l append:l ret
              proc a/0 regs=0 [3]: call:step sleep ret
            variant patched-slow expect=holds
              actors: a->a
              logs: l
              invariant quiet: always count(l) <= 1
              proc step/0 regs=0 [3]: append:l append:l ret
              proc a/0 regs=0 [3]: call:step sleep ret
        "#]],
    );
    let sc = compile(FILE, EXTENDS).unwrap();
    let faults = |v: &str| {
        let p = sc.variant(v).unwrap();
        let names: Vec<String> = p.faults.iter().map(|f| f.text.clone()).collect();
        (names.join("; "), p.fault_budget)
    };
    assert_eq!(faults("patched"), ("fault die: crash a".to_string(), 1));
    // The child keeps the parent's fault and adds its own, and sets the budget.
    assert_eq!(
        faults("patched-crash"),
        (
            "fault die: crash a; fault hang: stall a for 5s".to_string(),
            2
        )
    );
    // The grandchild replaces the inherited `die` in place and keeps the budget.
    assert_eq!(
        faults("patched-slow"),
        (
            "fault die: stall a for 1s; fault hang: stall a for 5s".to_string(),
            2
        )
    );
    // The grandchild's constant is in its code; its parent's is not.
    let nap = |v: &str| match &sc.variant(v).unwrap().procs[1].code[1] {
        Instr::Op { args, .. } => format!("{:?}", args[0]),
        other => panic!("{other:?}"),
    };
    assert_eq!(nap("patched-crash"), "Const(Int(1000))");
    assert_eq!(nap("patched-slow"), "Const(Int(3000))");
}

#[test]
fn editing_a_parent_variant_changes_its_childrens_fingerprints() {
    // A replay token recorded on `patched-crash` must not fit once what it runs changed, even
    // if the change was written in `patched`.
    let before = compile(FILE, EXTENDS).unwrap();
    let edited = EXTENDS.replace("append l \"twice\"", "append l \"thrice\"");
    let after = compile(FILE, &edited).unwrap();
    for v in ["patched", "patched-crash", "patched-slow"] {
        assert_ne!(
            before.variant(v).unwrap().fingerprint,
            after.variant(v).unwrap().fingerprint,
            "{v}"
        );
    }
    // Comments do not count.
    let commented = EXTENDS.replace("fault hang:", "# a comment\n    fault hang:");
    let same = compile(FILE, &commented).unwrap();
    assert_eq!(
        before.variant("patched-crash").unwrap().fingerprint,
        same.variant("patched-crash").unwrap().fingerprint
    );
}

#[test]
fn err_variant_extends_an_unknown_variant_suggests_the_closest() {
    check_err(
        "scenario s {\n  actor a { }\n  variant patched { expect holds }\n  variant crash extends pached { expect holds }\n}\n",
        expect![[r#"
            1 error in test.race
              × variant `crash` extends `pached`, which is not a variant of this scenario
               ╭─[test.race:4:25]
             3 │   variant patched { expect holds }
             4 │   variant crash extends pached { expect holds }
               ·                         ───┬──
               ·                            ╰── no such variant
             5 │ }
               ╰────
              help: did you mean `patched`?
        "#]],
    );
}

#[test]
fn err_variant_extends_itself() {
    check_err(
        "scenario s {\n  actor a { }\n  variant loop-back extends loop-back { expect holds }\n}\n",
        expect![[r#"
            1 error in test.race
              × variant `loop-back` extends itself
               ╭─[test.race:3:11]
             2 │   actor a { }
             3 │   variant loop-back extends loop-back { expect holds }
               ·           ────┬────         ────┬────
               ·               │                 ╰── the variant it extends
               ·               ╰── is this variant
             4 │ }
               ╰────
              help: a variant extends another variant of the same scenario; without `extends` it starts from
                    the top-level declarations
        "#]],
    );
}

#[test]
fn err_variants_extending_each_other_in_a_cycle() {
    check_err(
        "scenario s {\n  actor a { }\n  variant one extends two { expect holds }\n  variant two extends one { expect holds }\n  variant three extends one { expect holds }\n}\n",
        expect![[r#"
            1 error in test.race
              × variants extend each other in a cycle: `one` extends `two` extends `one`
               ╭─[test.race:3:23]
             2 │   actor a { }
             3 │   variant one extends two { expect holds }
               ·                       ─┬─
               ·                        ╰── `one` extends `two` here
             4 │   variant two extends one { expect holds }
               ·                       ─┬─
               ·                        ╰── closes the cycle
             5 │   variant three extends one { expect holds }
               ╰────
              help: one variant of the cycle must start from the top-level declarations: remove its `extends`
        "#]],
    );
}

#[test]
fn err_extends_without_a_name() {
    check_err(
        "scenario s {\n  actor a { }\n  variant one extends { expect holds }\n}\n",
        expect![[r#"
            1 error in test.race
              × expected the name of the variant it extends, found `{`
               ╭─[test.race:3:23]
             2 │   actor a { }
             3 │   variant one extends { expect holds }
               ·                       ┬
               ·                       ╰── expected the name of the variant it extends
             4 │ }
               ╰────
              help: names are like `mailman-lockfile` or `mailman-2.1`
        "#]],
    );
}

// ============================================================================ `ignore ERRNO`

#[test]
fn ignore_lowers_exactly_like_the_match_it_abbreviates() {
    let sugar = in_actor("    unlink(P) ignore ENOENT\n    link(P, \"/g\") ignore EEXIST, ENOENT\n    sql(\"INSERT INTO t (x) VALUES (1)\") ignore IntegrityError");
    let spelled = in_actor("    match unlink(P) { ok => {} err(ENOENT) => {} }\n    match link(P, \"/g\") {\n      ok => {}\n      err(EEXIST) => {}\n      err(ENOENT) => {}\n    }\n    match sql(\"INSERT INTO t (x) VALUES (1)\") { ok => {} err(IntegrityError) => {} }");
    let sugar = sugar.replace(
        "log l\n",
        "log l\n  database { \"CREATE TABLE t (x INT)\" }\n",
    );
    let spelled = spelled.replace(
        "log l\n",
        "log l\n  database { \"CREATE TABLE t (x INT)\" }\n",
    );
    let a = compile(FILE, &sugar).unwrap_or_else(|e| panic!("{}", render_plain(&e)));
    let b = compile(FILE, &spelled).unwrap_or_else(|e| panic!("{}", render_plain(&e)));
    assert_eq!(render(&a), render(&b));
    check_ok(
        &sugar,
        expect![[r#"
            scenario t
            variant default expect=none
              actors: a->a
              cells: c=Int(0)
              logs: l
              proc id/1 regs=1 [2]: ret= ret
              proc a/0 regs=3 [21]: unlink? jn3 j6 jn5 j6 unhandled link? jn9 j14 jn11 j14 jn13 j14 unhandled sql? jn17 j20 jn19 j20 unhandled ret
        "#]],
    );
}

#[test]
fn ignore_drops_the_listed_errors_and_reports_the_others() {
    use racelab_core::explore::{explore, Budget, EngineConfig, EngineKind};
    let run = |stmt: &str| {
        let src =
            format!("scenario s {{\n  fs {{ dir \"/d\" }}\n  actor a {{\n    {stmt}\n  }}\n}}\n");
        let prog = super::engines::program(&src);
        let ex = explore(
            &prog,
            &EngineConfig::new(
                EngineKind::NativeDfs,
                Budget::new(100, std::time::Duration::from_secs(30)),
            ),
        )
        .expect("explores");
        ex.findings
            .iter()
            .map(|f| f.invariant.clone())
            .collect::<Vec<_>>()
    };
    // The file does not exist: ENOENT is ignored, so nothing breaks ...
    assert_eq!(run("unlink(\"/d/f\") ignore ENOENT"), Vec::<String>::new());
    assert_eq!(
        run("unlink(\"/d/f\") ignore EEXIST, ENOENT"),
        Vec::<String>::new()
    );
    // ... but an error that is not listed is unhandled, as in a `match` without it.
    assert_eq!(run("unlink(\"/d/f\") ignore EEXIST"), ["unhandled_error"]);
}

#[test]
fn err_ignore_unknown_errno_suggests_the_closest() {
    check_err(
        &in_actor("    unlink(P) ignore ENOENTT, EEXIST"),
        expect![[r#"
            1 error in test.race
              × unknown errno `ENOENTT`
               ╭─[test.race:7:22]
             6 │   actor a {
             7 │     unlink(P) ignore ENOENTT, EEXIST
               ·                      ───┬───
               ·                         ╰── not an errno
             8 │   }
               ╰────
              help: did you mean `ENOENT`? known errnos: EPERM, ENOENT, EINTR, EIO, EBADF, EAGAIN, EACCES,
                    EBUSY, EEXIST, EXDEV, ENOTDIR, EISDIR, EINVAL, ENOSPC, EROFS, EMLINK, ENAMETOOLONG,
                    ENOTEMPTY, ELOOP, ESTALE, IntegrityError, OperationalError, ProgrammingError
        "#]],
    );
}

#[test]
fn err_ignore_after_something_that_is_not_an_operation() {
    check_err(
        &in_actor("    id(1) ignore ENOENT"),
        expect![[r#"
            1 error in test.race
              × `ignore` follows an operation that can fail
               ╭─[test.race:7:5]
             6 │   actor a {
             7 │     id(1) ignore ENOENT
               ·     ──────┬─────
               ·           ╰── not an operation
             8 │   }
               ╰────
              help: write it after a call such as `unlink(path) ignore ENOENT` or `sql("...") ignore
                    IntegrityError`
        "#]],
    );
}

#[test]
fn err_ignore_without_an_errno() {
    check_err(
        &in_actor("    unlink(P) ignore\n    unlink(P) ignore 3"),
        expect![[r#"
            2 errors in test.race
              × expected an errno such as ENOENT after `ignore`, found the end of the line
               ╭─[test.race:7:15]
             6 │   actor a {
             7 │     unlink(P) ignore
               ·               ───┬──
               ·                  ╰── expected the errors to ignore
             8 │     unlink(P) ignore 3
               ╰────
              help: write `unlink(path) ignore ENOENT` or `link(a, b) ignore EEXIST, ENOENT`
              × expected an errno such as ENOENT after `ignore`, found number `3`
               ╭─[test.race:8:22]
             7 │     unlink(P) ignore
             8 │     unlink(P) ignore 3
               ·                      ┬
               ·                      ╰── expected the errors to ignore
             9 │   }
               ╰────
              help: write `unlink(path) ignore ENOENT` or `link(a, b) ignore EEXIST, ENOENT`
        "#]],
    );
}

// ============================================================================ try / finally

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

/// What native-dfs (every reachable state) finds broken in one variant, sorted.
pub(super) fn broken_in(src: &str, variant: &str) -> Vec<String> {
    use racelab_core::explore::{explore, Budget, EngineConfig, EngineKind};
    let sc = compile(FILE, src).unwrap_or_else(|e| panic!("{}", render_plain(&e)));
    let prog = std::sync::Arc::new(sc.variant(variant).expect("variant").clone());
    let ex = explore(
        &prog,
        &EngineConfig::new(
            EngineKind::NativeDfs,
            Budget::new(10_000, std::time::Duration::from_secs(60)),
        ),
    )
    .expect("explores");
    let mut found: Vec<String> = ex.findings.iter().map(|f| f.invariant.clone()).collect();
    found.sort();
    found
}

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
