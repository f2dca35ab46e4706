//! What collections do when explored: a pid table's entry writes, queues and `for`, runtime
//! errors, fallbacks, and deep nesting refused with a position.

use expect_test::expect;

use super::findings;
use crate::parser::broken_in;

// ============================================================================ semantics

/// Two workers register in a shared pid table. `set alive[self] = ...` is one step (a Python
/// dict item assignment under the GIL), so both entries survive; a read-modify-write of the
/// whole table is two steps and loses one.
const PID_TABLE: &str = r#"scenario pids {
  cell alive = map {}
  proc register() { set alive[self] = true }
  actor worker x 2 {
    register()
  }
  invariant both: at end len(alive) == 2 and alive["worker1"] and "worker2" in alive
  variant atomic { expect holds }
  variant read-modify-write {
    proc register() { set alive = put(alive, self, true) }
    expect violates both
  }
}"#;

#[test]
fn a_pid_table_entry_set_is_one_step_and_a_whole_table_write_loses_updates() {
    assert_eq!(broken_in(PID_TABLE, "atomic"), Vec::<String>::new());
    assert_eq!(broken_in(PID_TABLE, "read-modify-write"), ["both"]);
}

#[test]
fn a_queue_delivers_in_order_and_for_goes_over_lists_and_map_keys() {
    let src = r#"scenario q {
  cell queue = []
  log got
  actor producer {
    for m in ["a", "b", "c"] {
      set queue = push(queue, m)
    }
  }
  actor consumer {
    let tries = 0
    while tries < 4 {
      tries = tries + 1
      let q = queue
      if len(q) == 0 { continue }
      append got q[0]
      set queue = rest(q)
    }
    let seen = ""
    for k in map { "z": 1, "b": 2, "a": 3 } {
      if k == "b" { continue }
      seen = seen + k
    }
    assert seen == "az", "map keys in order, b skipped: {seen}"
    let q = [1, 2, 3]
    let total = 0
    for x in q {
      q = push(q, x)
      if x == 2 { break }
      total = total + x
    }
    assert total == 1 and len(q) == 5, "break, and a snapshot of the list: {total} {q}"
    assert 3 not in [1, 2] and not 1 not in [1] and "b" not in map { "a": 1 } and "ell" in "hello"
    assert remove([1, 2, 1], 1) == [2, 1] and remove(map { 1: 2 }, 1) == map {}
    assert put([1, 2], 1, 5) == [1, 5] and str(map { "k": ["v"] }) == "map {{ \"k\": [\"v\"] }}"
  }
  invariant each_once: at end count(got, "a") <= 1 and count(got, "b") <= 1
  expect holds
}"#;
    // Unsynchronised read-modify-writes of the queue by both actors deliver a message twice
    // (the producer writes back a queue the consumer has already taken from): the model finds
    // it, and the consumer's own assertions about `for` and the builtins always hold.
    let found: Vec<String> = findings(src).into_iter().map(|(inv, _)| inv).collect();
    assert_eq!(found, ["each_once"]);
    // With the queue's updates under a lock, no message is delivered twice.
    let locked = src
        .replace("cell queue = []", "cell queue = []\n  lock L")
        .replace(
            "set queue = push(queue, m)",
            "with L { set queue = push(queue, m) }",
        )
        .replace(
            "      let q = queue\n",
            "      acquire L\n      let q = queue\n",
        )
        .replace(
            "      if len(q) == 0 { continue }",
            "      if len(q) == 0 { release L\n continue }",
        )
        .replace(
            "      set queue = rest(q)\n",
            "      set queue = rest(q)\n      release L\n",
        );
    assert_eq!(findings(&locked), vec![]);
}

#[test]
fn runtime_errors_name_the_actor_the_expression_and_its_line() {
    let run = |body: &str| {
        let src = format!(
            "scenario s {{\n  cell t = map {{ \"a\": 1 }}\n  actor w {{\n{body}\n  }}\n}}\n"
        );
        findings(&src)
            .into_iter()
            .map(|(inv, msg)| format!("{inv}: {msg}"))
            .collect::<Vec<_>>()
    };
    expect![[r#"
        (
            [
                "unhandled_error: w: q[2] (line 5): index 2 is out of range of a list of 2 (0 to 1)",
            ],
            [
                "unhandled_error: w: q[-1] (line 5): index -1 is out of range: the list is empty",
            ],
            [
                "unhandled_error: w: m[\"b\"] (line 5): no key \"b\" in the map (its keys: \"a\")",
            ],
            [
                "unhandled_error: w: t[\"z\"] (line 4): no key \"z\" in the map (its keys: \"a\")",
            ],
            [
                "unhandled_error: w: `for` goes over a list or a map, not an int (3)",
            ],
            [
                "unhandled_error: w: cannot apply `in` to int and int: the right side is a list, a map or (for a string) a string",
            ],
            [
                "unhandled_error: w: `push` takes a list first, not a map",
            ],
        )
    "#]].assert_debug_eq(&(
        run("    let q = [1, 2]\n    let x = q[2]"),
        run("    let q = []\n    let x = q[-1]"),
        run("    let m = t\n    let x = m[\"b\"]"),
        run("    set t[1] = t[\"z\"]"),
        run("    for x in 3 { }"),
        run("    let b = 1 in 2"),
        run("    let l = push(map {}, 1)"),
    ));
}

#[test]
fn a_fallback_replaces_any_error_and_runs_only_when_the_operation_failed() {
    let run = |body: &str| {
        let src = format!(
            "scenario s {{\n  fs {{ dir \"/d\"  file \"/d/there\" = \"x\" }}\n  log l\n  actor w {{\n{body}\n  }}\n}}\n"
        );
        findings(&src)
            .into_iter()
            .map(|(inv, msg)| format!("{inv}: {msg}"))
            .collect::<Vec<_>>()
    };
    let none: Vec<String> = vec![];
    assert_eq!(
        run("    assert (read(\"/d/gone\") or \"fb\") == \"fb\""),
        none
    );
    assert_eq!(
        run("    assert (read(\"/d/there\") or \"fb\") == \"x\""),
        none
    );
    // EISDIR as well as ENOENT: any errno.
    assert_eq!(run("    assert (read(\"/d\") or \"dir\") == \"dir\""), none);
    assert_eq!(
        run("    assert (read(\"/d/gone\") or read(\"/d/none\") or \"z\") == \"z\""),
        none
    );
    // The last alternative's own failure is not caught.
    expect![[r#"
        [
            "unhandled_error: w: read(\"/d/none\") failed with ENOENT and nothing handles it",
        ]
    "#]]
    .assert_debug_eq(&run("    let v = read(\"/d/gone\") or read(\"/d/none\")"));
    // The fallback is evaluated only when the operation failed.
    assert_eq!(
        run("    let v = read(\"/d/there\") or read(\"/d/none\")\n    append l v"),
        none
    );
}

#[test]
fn tens_of_thousands_of_nested_lists_maps_or_indexes_are_refused_with_a_position() {
    let cases = [
        (
            "lists.race",
            format!("{}1{}", "[".repeat(50_000), "]".repeat(50_000)),
        ),
        (
            "maps.race",
            format!("{}1{}", "map { 1: ".repeat(20_000), " }".repeat(20_000)),
        ),
        ("indexes.race", format!("[1]{}", "[0]".repeat(50_000))),
    ];
    for (name, expr) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let src =
            format!("scenario deep {{\n  cell c = 0\n  actor a {{\n    set c = {expr}\n  }}\n}}\n");
        std::fs::write(dir.path().join(name), src).expect("write");
        let (code, _, err) = crate::lang_cli::racelab(dir.path(), &["check", name]);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(err.contains(&format!("{name}:4:")), "{name}: {err}");
        assert!(err.contains("nested too deeply"), "{name}: {err}");
        assert!(
            err.contains(&format!("1 error in {name}")),
            "one diagnostic: {err}"
        );
    }
}
