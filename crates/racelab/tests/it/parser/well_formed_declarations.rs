//! Well-formed scenarios, part one: declarations, procedures, cells and control flow compile to
//! the expected shape.

use expect_test::expect;
use racelab_core::lang::{compile, render_plain};

use super::{check_ok, in_actor, render};

#[test]
fn mailman_lockfile() {
    let src = include_str!("../../../../../scenarios/mailman-lockfile.race");
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
