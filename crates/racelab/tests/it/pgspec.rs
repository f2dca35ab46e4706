//! PostgreSQL isolation specs: every spec of PostgreSQL's suite parses, malformed specs get
//! file:line:col diagnostics with a caret (expect-test snapshots, rendered as a user sees
//! them), and a small spec runs on the real server with isolationtester's output.

use expect_test::{expect, Expect};
use racelab_core::lang::render_plain;
use racelab_real::pgspec::{self, LoadError};

fn errors(src: &str, want: Expect) {
    match pgspec::parse_named("bad.spec", src) {
        Ok(spec) => panic!("expected errors, parsed {spec:?}"),
        // A first line at column 0, so that expect-test's indentation trimming round-trips.
        Err(LoadError::Syntax(e)) => want.assert_eq(&format!("{e}\n{}", render_plain(&e))),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn every_spec_of_postgres_suite_parses() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/pg-isolation/specs");
    let mut n = 0;
    let mut sessions = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let spec = pgspec::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n += 1;
        sessions += spec.sessions.len();
        assert!(spec.permutation_count() >= 1, "{}", path.display());
    }
    assert_eq!(n, 117);
    assert!(
        sessions >= 2 * n,
        "most specs have two or more sessions: {sessions}"
    );
}

#[test]
fn a_spec_parses_into_sessions_steps_and_markers() {
    let spec = pgspec::parse_named(
        "ok.spec",
        "setup { CREATE TABLE t (a int); }\nsetup { VACUUM t; }\nteardown { DROP TABLE t; }\n\
         session s1\nsetup { BEGIN; }\nstep a { SELECT 1; }\nstep \"b c\" {\n  UPDATE t SET a = 1;\n}\nteardown\t{ COMMIT; }\n\
         session \"s 2\"\nstep x { LOCK t; } # a comment\n\
         permutation a x(*) \"b c\"(x, x notices 2)\npermutation x a \"b c\"\n",
    )
    .unwrap();
    expect![[r#"
        Spec {
            setup: [
                "CREATE TABLE t (a int);",
                "VACUUM t;",
            ],
            teardown: Some(
                "DROP TABLE t;",
            ),
            sessions: [
                Session {
                    name: "s1",
                    setup: Some(
                        "BEGIN;",
                    ),
                    steps: [
                        Step {
                            name: "a",
                            sql: "SELECT 1;",
                            span: Span {
                                start: 114,
                                end: 129,
                            },
                        },
                        Step {
                            name: "b c",
                            sql: "\n  UPDATE t SET a = 1;\n",
                            span: Span {
                                start: 135,
                                end: 166,
                            },
                        },
                    ],
                    teardown: Some(
                        "COMMIT;",
                    ),
                },
                Session {
                    name: "s 2",
                    setup: None,
                    steps: [
                        Step {
                            name: "x",
                            sql: "LOCK t;",
                            span: Span {
                                start: 207,
                                end: 220,
                            },
                        },
                    ],
                    teardown: None,
                },
            ],
            permutations: [
                Permutation {
                    steps: [
                        PermStep {
                            session: 0,
                            step: 0,
                            blockers: [],
                        },
                        PermStep {
                            session: 1,
                            step: 0,
                            blockers: [
                                Once,
                            ],
                        },
                        PermStep {
                            session: 0,
                            step: 1,
                            blockers: [
                                Step {
                                    session: 1,
                                    step: 0,
                                },
                                Notices {
                                    session: 1,
                                    step: 0,
                                    count: 2,
                                },
                            ],
                        },
                    ],
                    span: Span {
                        start: 233,
                        end: 273,
                    },
                },
                Permutation {
                    steps: [
                        PermStep {
                            session: 1,
                            step: 0,
                            blockers: [],
                        },
                        PermStep {
                            session: 0,
                            step: 0,
                            blockers: [],
                        },
                        PermStep {
                            session: 0,
                            step: 1,
                            blockers: [],
                        },
                    ],
                    span: Span {
                        start: 274,
                        end: 295,
                    },
                },
            ],
        }
    "#]]
    .assert_debug_eq(&spec);
}

#[test]
fn without_permutations_every_interleaving_runs_in_isolationtesters_order() {
    let spec = pgspec::parse_named(
        "all.spec",
        "session a\nstep a1 {}\nstep a2 {}\nsession b\nstep b1 {}\n",
    )
    .unwrap();
    let names: Vec<String> = spec
        .permutations_to_run()
        .iter()
        .map(|p| {
            p.iter()
                .map(|s| spec.step(s).name.clone())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(names, ["a1 a2 b1", "a1 b1 a2", "b1 a1 a2"]);
    assert_eq!(spec.permutation_count(), 3);
}

#[test]
fn a_session_of_twenty_thousand_steps_does_not_overflow_the_stack() {
    // isolationtester enumerates interleavings by recursion, one level per step; racelab's
    // enumeration keeps its own stack, so this runs on a test thread's 2 MiB.
    let mut src = String::from("session a\n");
    for i in 0..20_000 {
        src.push_str(&format!("step s{i} {{ SELECT {i} }}\n"));
    }
    src.push_str("session b\nstep b1 {}\n");
    let spec = pgspec::parse_named("long.spec", &src).unwrap();
    assert_eq!(spec.permutation_count(), 20_001);
    let perms = spec.permutations_to_run();
    assert_eq!(perms.len(), 20_001);
    assert!(perms.iter().all(|p| p.len() == 20_001));
    // The first runs all of a's steps, then b's; the last starts with b's.
    assert_eq!(perms[0].last().map(|s| s.session), Some(1));
    assert_eq!(perms[20_000][0].session, 1);
}

#[test]
fn an_undefined_step_and_a_misspelt_marker_are_each_reported() {
    errors(
        "session s1\nstep one { SELECT 1; }\nsession s2\nstep two { SELECT 2; }\npermutation one tow three(onw)\n",
        expect![[r#"
            2 errors in bad.spec
              × undefined step `tow` in permutation
               ╭─[bad.spec:5:17]
             4 │ step two { SELECT 2; }
             5 │ permutation one tow three(onw)
               ·                 ─┬─
               ·                  ╰── no step has this name
               ╰────
              help: did you mean `two`?
              × undefined step `three` in permutation
               ╭─[bad.spec:5:21]
             4 │ step two { SELECT 2; }
             5 │ permutation one tow three(onw)
               ·                     ──┬──
               ·                       ╰── no step has this name
               ╰────
              help: steps are declared inside sessions: `step NAME { SQL }`
        "#]],
    );
}

#[test]
fn a_marker_on_its_own_session_and_a_duplicate_step_are_errors() {
    errors(
        "session s1\nstep a { SELECT 1; }\nstep b { SELECT 2; }\nsession s2\nstep a { SELECT 3; }\npermutation a b(a)\n",
        expect![[r#"
            2 errors in bad.spec
              × duplicate step name `a`
               ╭─[bad.spec:5:6]
             4 │ session s2
             5 │ step a { SELECT 3; }
               ·      ┬
               ·      ╰── defined again here
             6 │ permutation a b(a)
               ╰────
              help: step names are unique across the whole spec; the first `a` is at byte 16
              × permutation step `b` cannot block on its own session
               ╭─[bad.spec:6:17]
             5 │ step a { SELECT 3; }
             6 │ permutation a b(a)
               ·                 ┬
               ·                 ╰── `a` is a step of the same session
               ╰────
              help: a step of one session always completes before the session's next step starts
        "#]],
    );
}

#[test]
fn an_unterminated_sql_block_points_at_its_brace() {
    errors(
        "setup { CREATE TABLE t (a int);\nsession s1\nstep a { SELECT 1; }\n",
        expect![[r#"
            1 error in bad.spec
              × expected `session NAME`, found the end of the file
               ╭─[bad.spec:4:1]
             3 │ step a { SELECT 1; }
               ╰────
              help: the `{` on line 1 is not closed before the next section: its SQL block runs to the `}` on
                    line 3 and swallows the spec text between
        "#]],
    );
    errors(
        "session s1\nstep a { SELECT 1;\n",
        expect![[r#"
            1 error in bad.spec
              × unterminated sql block
               ╭─[bad.spec:2:8]
             1 │ session s1
             2 │ step a { SELECT 1;
               ·        ┬
               ·        ╰── this `{` is never closed
               ╰────
              help: end the SQL block with `}` (an SQL block cannot contain `}`)
        "#]],
    );
}

#[test]
fn sections_out_of_order_and_keywords_as_names_are_explained() {
    errors(
        "session s1\nstep a { SELECT 1; }\nsetup { SELECT 2; }\n",
        expect![[r#"
            1 error in bad.spec
              × expected `permutation` or the end of the file, found keyword `setup`
               ╭─[bad.spec:3:1]
             2 │ step a { SELECT 1; }
             3 │ setup { SELECT 2; }
               · ──┬──
               ·   ╰── expected `permutation` or the end of the file
               ╰────
              help: the order is: setup blocks, teardown, sessions, permutations
        "#]],
    );
    errors(
        "session step\nstep a { SELECT 1; }\n",
        expect![[r#"
            1 error in bad.spec
              × `step` is a keyword, not a session name
               ╭─[bad.spec:1:9]
             1 │ session step
               ·         ──┬─
               ·           ╰── expected a session name
             2 │ step a { SELECT 1; }
               ╰────
              help: quote it to use it as a name: `"step"`
        "#]],
    );
    errors(
        "session s1\nstep a { SELECT 1; }\npermutation a(b notices)\n",
        expect![[r#"
            1 error in bad.spec
              × expected a number of notices, found `)`
               ╭─[bad.spec:3:24]
             2 │ step a { SELECT 1; }
             3 │ permutation a(b notices)
               ·                        ┬
               ·                        ╰── expected a number of notices
               ╰────
        "#]],
    );
    errors(
        "session s1\n",
        expect![[r#"
            1 error in bad.spec
              × expected `step NAME { SQL }`, found the end of the file
               ╭─[bad.spec:2:1]
             1 │ session s1
               ╰────
              help: session `s1` needs at least one step
        "#]],
    );
}

/// The server `cargo xtask db up` started; a test that needs it and finds none fails.
fn pg_url() -> String {
    std::env::var("RACELAB_POSTGRES_URL").ok().filter(|u| !u.is_empty()).expect("RACELAB_POSTGRES_URL is not set: start a server with `eval \"$(cargo xtask db up --env)\"`")
}

/// A lock wait is detected by polling (the second UPDATE is reported `<waiting ...>` and
/// completes after the COMMIT), `(*)` reports a step waiting at once, notices and result sets
/// are printed as isolationtester prints them, and an error after a result set keeps the set.
/// The snapshot is byte for byte what PostgreSQL 15's isolationtester prints for this spec.
#[test]
fn a_blocking_spec_runs_on_postgres_with_isolationtesters_output() {
    use racelab_real::pgspec::{run, suite};
    let spec = pgspec::parse_named(
        "lock.spec",
        "setup { CREATE TABLE racelab_t (id int PRIMARY KEY, v text); INSERT INTO racelab_t VALUES (1, 'a'), (20, NULL); }\n\
         teardown { DROP TABLE racelab_t; }\n\
         session s1\nsetup { BEGIN; }\nstep u1 { UPDATE racelab_t SET v = 'b' WHERE id = 1; }\nstep c1 { COMMIT; }\n\
         session s2\nstep u2 { UPDATE racelab_t SET v = 'c' WHERE id = 1 RETURNING id, v; }\n\
         step n2 { DO $$ BEGIN RAISE NOTICE 'hello'; END $$; SELECT id, v FROM racelab_t ORDER BY id; SELECT 1/0; }\n\
         permutation u1 u2 c1 n2\npermutation u1 u2(*) c1 n2\n",
    )
    .unwrap();
    let db = suite::Database::create(&pg_url(), "racelab_pgspec_test1").unwrap();
    let (control, sessions) = run::connect_real(&db.params, "lock", &spec).unwrap();
    let outcome = run::run_spec(&spec, control, sessions, std::time::Duration::from_secs(60));
    assert_eq!(outcome.fatal, None);
    expect![[r#"
        Parsed test spec with 2 sessions

        starting permutation: u1 u2 c1 n2
        step u1: UPDATE racelab_t SET v = 'b' WHERE id = 1;
        step u2: UPDATE racelab_t SET v = 'c' WHERE id = 1 RETURNING id, v; <waiting ...>
        step c1: COMMIT;
        step u2: <... completed>
        id|v
        --+-
         1|c
        (1 row)

        s2: NOTICE:  hello
        step n2: DO $$ BEGIN RAISE NOTICE 'hello'; END $$; SELECT id, v FROM racelab_t ORDER BY id; SELECT 1/0;
        id|v
        --+-
         1|c
        20| 
        (2 rows)

        ERROR:  division by zero

        starting permutation: u1 u2 c1 n2
        step u1: UPDATE racelab_t SET v = 'b' WHERE id = 1;
        step u2: UPDATE racelab_t SET v = 'c' WHERE id = 1 RETURNING id, v; <waiting ...>
        step c1: COMMIT;
        step u2: <... completed>
        id|v
        --+-
         1|c
        (1 row)

        s2: NOTICE:  hello
        step n2: DO $$ BEGIN RAISE NOTICE 'hello'; END $$; SELECT id, v FROM racelab_t ORDER BY id; SELECT 1/0;
        id|v
        --+-
         1|c
        20| 
        (2 rows)

        ERROR:  division by zero
    "#]]
    .assert_eq(&outcome.output);
}

/// A spec of PostgreSQL's own suite, compared with its expected output file.
#[test]
fn postgres_own_deadlock_spec_matches_its_expected_output() {
    use racelab_real::pgspec::suite;
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/pg-isolation/specs");
    let db = suite::Database::create(&pg_url(), "racelab_pgspec_test2").unwrap();
    let results = tempfile::tempdir().unwrap();
    for name in ["deadlock-simple", "nowait", "skip-locked"] {
        let case = suite::case(&dir.join(format!("{name}.spec"))).unwrap();
        let report = suite::run_case(
            &db,
            &case,
            results.path(),
            std::time::Duration::from_secs(60),
        );
        assert!(
            matches!(report.verdict, suite::Verdict::Matches(_)),
            "{name}: {:?}",
            report.verdict
        );
        assert!(report.permutations >= 1);
    }
}
